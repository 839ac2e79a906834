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
	autoConsent := flag.Bool("auto-consent", false, "skip the OAuth consent page: /authorize redirects straight back with a code")
	omitRefresh := flag.Int("omit-refresh-token", 0, "every `N`th OAuth refresh response omits refresh_token (0 = never)")
	// The order fixes the default ports: 9441 (site) … 9448 (auth).
	hosts := []string{atlassim.HostSite, atlassim.HostAPI, atlassim.HostMedia, atlassim.HostBitbucket,
		atlassim.HostJiraDC, atlassim.HostConfluenceDC, atlassim.HostBitbucketDC, atlassim.HostAuth}
	addrs := make(map[string]*string, len(hosts))
	for i, h := range hosts {
		addrs[h] = flag.String("addr-"+h, fmt.Sprintf("127.0.0.1:%d", 9441+i), "listen `address` of the "+h+" virtual host")
	}
	flag.Parse()

	logger := log.New(os.Stderr, "atlassim: ", log.LstdFlags)
	cfg := atlassim.Config{Seed: *seed, Addrs: map[string]string{}, AutoConsent: *autoConsent, OmitRefreshToken: *omitRefresh}
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
			{"DemoOAuthClientID", atlassim.DemoOAuthClientID, "3LO app " + atlassim.DemoOAuthAppName + " at auth /authorize and /oauth/token"},
			{"DemoOAuthClientSecret", atlassim.DemoOAuthClientSecret, "its client_secret (in the token request body)"},
			{"DemoOAuthRedirectURI", atlassim.DemoOAuthRedirectURI, "its only registered redirect_uri (exact match)"},
			{"DemoServiceAccountClientID", atlassim.DemoServiceAccountClientID, "service account " + atlassim.DemoServiceAccountID + ", grant_type=client_credentials"},
			{"DemoServiceAccountClientSecret", atlassim.DemoServiceAccountClientSecret, "its client_secret"},
		} {
			fmt.Printf("  %-30s %s\n  %-30s   (%s)\n", c.name, c.value, "", c.use)
		}
		fmt.Printf("OAuth consent is given as %s (%s); the token endpoint is %s/oauth/token.\n",
			atlassim.DemoDisplayName, atlassim.DemoAccountID, sim.URL(atlassim.HostAuth))
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s := <-sig
	logger.Printf("received %s, shutting down", s)
	if err := sim.Close(); err != nil {
		logger.Printf("closing: %v", err)
	}
}
