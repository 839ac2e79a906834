package console

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

// stateCollector exports the state of every OAuth credential, read on each
// scrape from the running config's atlasgate app (the stored token sets are
// the authority, so every replica reports the same):
//
//	atlasgate_credential_state{credential, state} 1 for the current state, 0 for the others
//	atlasgate_credential_grant_expiry_timestamp_seconds{credential} the 365-day absolute expiry
//	atlasgate_credential_users{credential} per-user credentials: callers with a stored grant
//	atlasgate_credential_upstream{credential, verdict} 1 for what Atlassian last answered (working, rejected, rate_limited, failing)
//	atlasgate_credential_rate_limit_remaining{credential} Atlassian's last X-RateLimit-Remaining
//	atlasgate_credential_rate_limit_near_limit{credential} 1 when Atlassian's last X-RateLimit-NearLimit was true
//	atlasgate_credential_upstream_requests_last_hour{credential}, …_errors_last_hour{credential} the console's "Last hour"
//
// Per-user credentials have a state per caller, so they report the number of
// callers instead of a state.
//
// An alert on `atlasgate_credential_state{state="needs_reauthorization"} == 1`
// tells operators that someone must press Authorize.
type stateCollector struct {
	state, expiry, users, upstream, remaining, near, hourRequests, hourErrors *prometheus.Desc
}

var allVerdicts = []string{atlasgate.UpstreamWorking, atlasgate.UpstreamRejected, atlasgate.UpstreamRateLimited, atlasgate.UpstreamFailing}

var allStates = []string{tokenstore.StateUnauthorized, tokenstore.StateReady, tokenstore.StateUnreadable, tokenstore.StateNeedsReauthorization}

func newStateCollector() *stateCollector {
	return &stateCollector{
		state: prometheus.NewDesc("atlasgate_credential_state",
			"State of each OAuth credential: 1 for the current state (unauthorized, ready, needs_reauthorization, unreadable), 0 for the others.",
			[]string{"credential", "state"}, nil),
		expiry: prometheus.NewDesc("atlasgate_credential_grant_expiry_timestamp_seconds",
			"When each authorized OAuth credential's grant reaches Atlassian's 365-day absolute expiry (Unix time).",
			[]string{"credential"}, nil),
		users: prometheus.NewDesc("atlasgate_credential_users",
			"Per-user OAuth credentials: the number of callers who have authorized their own account.",
			[]string{"credential"}, nil),
		upstream: prometheus.NewDesc("atlasgate_credential_upstream",
			"What Atlassian last answered through each used credential: 1 for the current verdict (working, rejected: 401, rate_limited, failing: 5xx or no answer), 0 for the others.",
			[]string{"credential", "verdict"}, nil),
		remaining: prometheus.NewDesc("atlasgate_credential_rate_limit_remaining",
			"Atlassian's last X-RateLimit-Remaining for each credential.",
			[]string{"credential"}, nil),
		near: prometheus.NewDesc("atlasgate_credential_rate_limit_near_limit",
			"1 when Atlassian's last X-RateLimit-NearLimit for the credential was true, else 0.",
			[]string{"credential"}, nil),
		hourRequests: prometheus.NewDesc("atlasgate_credential_upstream_requests_last_hour",
			"Requests sent to Atlassian with each used credential in the last 60 minutes, on this replica.",
			[]string{"credential"}, nil),
		hourErrors: prometheus.NewDesc("atlasgate_credential_upstream_errors_last_hour",
			"Of those, the ones Atlassian answered with 401, 429 or 5xx, or did not answer.",
			[]string{"credential"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.expiry
	ch <- c.users
	ch <- c.upstream
	ch <- c.remaining
	ch <- c.near
	ch <- c.hourRequests
	ch <- c.hourErrors
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	app, err := atlasgate.Running()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, st := range statuses(ctx, app) {
		c.collectUpstream(ch, st)
		if st.OAuth == nil {
			continue
		}
		if st.OAuth.PerUser {
			ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(st.OAuth.Users), st.Name)
			continue
		}
		for _, s := range allStates {
			v := 0.0
			if s == st.OAuth.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.Name, s)
		}
		if !st.OAuth.AbsoluteExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(st.OAuth.AbsoluteExpiry.Unix()), st.Name)
		}
	}
}

func (c *stateCollector) collectUpstream(ch chan<- prometheus.Metric, st CredentialStatus) {
	u := st.Upstream
	if u.Verdict != "" {
		for _, v := range allVerdicts {
			x := 0.0
			if v == u.Verdict {
				x = 1
			}
			ch <- prometheus.MustNewConstMetric(c.upstream, prometheus.GaugeValue, x, st.Name, v)
		}
		ch <- prometheus.MustNewConstMetric(c.hourRequests, prometheus.GaugeValue, float64(u.RequestsLastHour), st.Name)
		ch <- prometheus.MustNewConstMetric(c.hourErrors, prometheus.GaugeValue, float64(u.ErrorsLastHour), st.Name)
	}
	if u.RateLimitRemaining != nil {
		ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(*u.RateLimitRemaining), st.Name)
	}
	if !u.RateLimitSeenAt.IsZero() {
		near := 0.0
		if u.RateLimitNearLimit {
			near = 1
		}
		ch <- prometheus.MustNewConstMetric(c.near, prometheus.GaugeValue, near, st.Name)
	}
}

// registerMetrics adds the collector to the config's metrics registry, once
// however many consoles (and the admin route) ask.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	if err := reg.Register(newStateCollector()); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}

// Interface guards
var _ prometheus.Collector = (*stateCollector)(nil)
