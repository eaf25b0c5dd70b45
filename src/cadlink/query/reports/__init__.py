"""Reports: each turns a `ReportSpec` into plain data through a `Plan`."""
