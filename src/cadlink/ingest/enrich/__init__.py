"""Pure enrichment functions: user agent, bots, geo, referrer/channel, UTM, visitor identity."""
