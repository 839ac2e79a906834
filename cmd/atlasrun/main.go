// Command atlasrun is `make run`: it adapts the Caddyfile with the gateway
// binary, checks what Caddy would report badly or not at all (see package
// preflight: unset variables, a password instead of its hash, a port another
// gateway already holds) and then replaces itself with `caddy run`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/atlasgate/atlasgate/cmd/internal/preflight"
)

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "the atlasgate Caddy `binary`")
	config := flag.String("config", "caddyfiles/Caddyfile", "the `Caddyfile`")
	flag.Parse()

	adapted, err := exec.Command(*caddyBin, "adapt", "--config", *config, "--adapter", "caddyfile").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Stderr.Write(ee.Stderr)
		}
		fail("adapting %s: %v", *config, err)
	}
	listen, err := preflight.Config(adapted)
	if err != nil {
		fail("%v", err)
	}
	if err := preflight.FreeAddrs(listen...); err != nil {
		fail("%v", err)
	}
	path, err := exec.LookPath(*caddyBin)
	if err != nil {
		fail("%v (run `make build` first)", err)
	}
	args := []string{path, "run", "--config", *config, "--adapter", "caddyfile"}
	if err := syscall.Exec(path, args, os.Environ()); err != nil {
		fail("starting %s: %v", path, err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", args...)
	os.Exit(1)
}
