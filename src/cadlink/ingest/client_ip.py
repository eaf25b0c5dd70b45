"""Which address is the client's: the socket peer, or `X-Forwarded-For` behind a trusted proxy."""

from __future__ import annotations


def client_ip(peer: str | None, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """The rightmost address in `X-Forwarded-For` that is not a trusted proxy.

    The header is believed only when the socket peer is a trusted proxy; otherwise anyone
    could claim any address.
    """
    peer = peer or ""
    if not forwarded_for or peer not in trusted:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer
