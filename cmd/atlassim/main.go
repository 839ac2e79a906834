// Command atlassim runs the Atlassian simulator (integration/atlassim)
// standalone, for the demo and for trying the gateway by hand. Every virtual
// host listens on its own loopback port over TLS with a CA generated at start;
// write it out with -ca-out and point the gateway's trust at it.
//
// The demo credentials it prints are fake values that only this simulator
// accepts.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

func main() {
	seed := flag.Bool("seed", true, "load the demo users, tokens, issues, pages and repositories")
	caOut := flag.String("ca-out", "", "write the simulator's CA certificate (PEM) to this `path`")
	quiet := flag.Bool("quiet", false, "do not log requests")
	hosts := []string{atlassim.HostSite, atlassim.HostAPI, atlassim.HostMedia, atlassim.HostBitbucket,
		atlassim.HostJiraDC, atlassim.HostConfluenceDC, atlassim.HostBitbucketDC}
	addrs := make(map[string]*string, len(hosts))
	for i, h := range hosts {
		addrs[h] = flag.String("addr-"+h, fmt.Sprintf("127.0.0.1:%d", 9441+i), "listen `address` of the "+h+" virtual host")
	}
	flag.Parse()

	logger := log.New(os.Stderr, "atlassim: ", log.LstdFlags)
	cfg := atlassim.Config{Seed: *seed, Addrs: map[string]string{}}
	for h, a := range addrs {
		cfg.Addrs[h] = *a
	}
	if !*quiet {
		cfg.Logf = logger.Printf
	}
	sim, err := atlassim.Start(cfg)
	if err != nil {
		logger.Fatal(err)
	}
	if *caOut != "" {
		if err := sim.WriteCAFile(*caOut); err != nil {
			sim.Close()
			logger.Fatal(err)
		}
		fmt.Printf("CA certificate written to %s\n", *caOut)
	}

	fmt.Println("Atlassian simulator listening:")
	for _, h := range hosts {
		fmt.Printf("  %-14s %s\n", h, sim.URL(h))
	}
	fmt.Printf("  cloudId        %s\n", sim.CloudID())
	if *seed {
		fmt.Printf("Demo credentials (fake, accepted only here); user %s <%s>, DC username %q:\n",
			atlassim.DemoDisplayName, atlassim.DemoEmail, atlassim.DemoUsername)
		for _, c := range []struct{ name, value, use string }{
			{"DemoAPIToken", atlassim.DemoAPIToken, "Basic email:token at site (classic)"},
			{"DemoScopedToken", atlassim.DemoScopedToken, "Basic email:token at api /ex/... (scoped)"},
			{"DemoBitbucketAPIToken", atlassim.DemoBitbucketAPIToken, "Basic email:token at bitbucket"},
			{"DemoBitbucketAccessToken", atlassim.DemoBitbucketAccessToken, "Bearer at bitbucket, workspace " + atlassim.DemoWorkspace},
			{"DemoPAT", atlassim.DemoPAT, "Bearer at jira-dc, confluence-dc, bitbucket-dc"},
			{"DemoDCPassword", atlassim.DemoDCPassword, "Basic " + atlassim.DemoUsername + ":password at the DC hosts"},
		} {
			fmt.Printf("  %-25s %s\n  %-25s   (%s)\n", c.name, c.value, "", c.use)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s := <-sig
	logger.Printf("received %s, shutting down", s)
	if err := sim.Close(); err != nil {
		logger.Printf("closing: %v", err)
	}
}
