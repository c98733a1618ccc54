"""Pure checks: plain data in, `CheckResult` out. No pytest, no model loading here."""
