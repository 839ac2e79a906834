// Package hotpath holds no code of its own: its benchmarks measure the
// gateway's request path (atlasgate_auth with a cached JWT or API key, an
// atlasgate_policy decision over 50 or 1,000 rules, the audit event, and
// atlasgate_proxy injecting an api_token credential) against plain Caddy's
// reverse_proxy to the same in-process upstream, in the same run, through real
// caddyhttp.Servers loaded with caddy.Load. The difference between the
// sub-benchmarks is atlasgate's cost; `make bench` prints it.
package hotpath
