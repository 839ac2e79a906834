// Command caddy is the atlasgate build of Caddy: the standard modules plus every
// atlasgate module. It builds the same binary as `make build` (xcaddy) with a plain
// `go build`, for a fast development loop.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/atlasgate/atlasgate"
)

func main() {
	caddycmd.Main()
}
