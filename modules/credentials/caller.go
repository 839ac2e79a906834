package credentials

import "context"

// Caller is the key under which a per-user credential keeps the grant of the
// request's caller: `<authenticator>:<user>` for an identity that
// atlasgate_auth established, `caddy:<user>` for one of Caddy's own
// authentication (no authenticator may be named `caddy`), "" for none. The
// console binds an authorization to it and the proxy holds back per grant by
// it, so all three agree on who the caller is.
func Caller(ctx context.Context) string { return caller(ctx) }
