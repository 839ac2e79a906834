package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// Options say what an integration package's TestMain needs around its tests.
type Options struct {
	// Sim configures the Atlassian simulator every package runs against.
	Sim atlassim.Config
	// Name names the package's temporary directory (atlasgate-<Name>-…).
	Name string
	// CAFile is the name, inside Dir, of the simulator's CA certificate file
	// (for trusted_ca_file); empty means "ca.pem".
	CAFile string
	// Env is set in the process environment before Setup runs: the secrets
	// the test configs read through {env.*} placeholders.
	Env map[string]string
	// Setup runs once the simulator, the directory, the CA file and the
	// environment are ready, and before the tests: package variables, extra
	// servers (register their shutdown with Harness.Cleanup), a shared
	// gateway config. An error ends the run with exit code 1.
	Setup func(h *Harness) error
}

// Harness is what Main prepared: the running simulator, the package's
// temporary directory and the simulator's CA file in it.
type Harness struct {
	Sim    *atlassim.Sim
	Dir    string
	CAFile string

	cleanups []func()
}

// Cleanup registers f to run after the tests, once Caddy has stopped; the
// last registered runs first.
func (h *Harness) Cleanup(f func()) { h.cleanups = append(h.cleanups, f) }

// Main is an integration package's TestMain body:
//
//	func TestMain(m *testing.M) { os.Exit(itest.Main(m, itest.Options{…})) }
//
// It starts the simulator, makes the temporary directory, writes the CA file,
// sets the environment, runs Setup and the tests, then stops the in-process
// Caddy, runs the cleanups, removes the directory and stops the simulator. It
// returns the exit code.
func Main(m *testing.M, o Options) (code int) {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		return 1
	}
	h := &Harness{}
	var err error
	if h.Sim, err = atlassim.Start(o.Sim); err != nil {
		return fail("starting the Atlassian simulator", err)
	}
	defer h.Sim.Close()
	name := o.Name
	if name == "" {
		name = "it"
	}
	if h.Dir, err = os.MkdirTemp("", "atlasgate-"+name+"-"); err != nil {
		return fail("temporary directory", err)
	}
	defer os.RemoveAll(h.Dir)
	ca := o.CAFile
	if ca == "" {
		ca = "ca.pem"
	}
	h.CAFile = filepath.Join(h.Dir, ca)
	if err := h.Sim.WriteCAFile(h.CAFile); err != nil {
		return fail("writing the simulator's CA file", err)
	}
	for k, v := range o.Env {
		os.Setenv(k, v)
	}
	// Deferred in this order so that Caddy stops first (it may still use the
	// servers the cleanups stop), then the cleanups, the directory, the
	// simulator.
	defer func() {
		for i := len(h.cleanups) - 1; i >= 0; i-- {
			h.cleanups[i]()
		}
	}()
	defer caddy.Stop()
	if o.Setup != nil {
		if err := o.Setup(h); err != nil {
			return fail("setting up", err)
		}
	}
	return m.Run()
}
