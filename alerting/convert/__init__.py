"""Rules out to other tools: standard Sigma, and SIEM queries through pySigma."""
