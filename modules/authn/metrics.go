package authn

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The authenticators' metrics. They are process-wide, so counts go on across
// config reloads; every config registers them in its own registry.
var (
	cacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "atlasgate", Subsystem: "authn", Name: "cache_lookups_total",
		Help: "Verified-credential cache lookups by authenticator type and result (hit, miss).",
	}, []string{"kind", "result"})
	idpCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "atlasgate", Subsystem: "authn", Name: "idp_request_duration_seconds",
		Help:    "Calls to identity providers (JWKS, introspection, userinfo) by authenticator type and outcome (ok, error).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"kind", "outcome"})
)

// RegisterMetrics registers the authenticator metrics in the config's
// Prometheus registry; authenticator modules call it when provisioned.
func RegisterMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{cacheLookups, idpCalls} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// CacheLookup counts a verified-credential cache hit or miss.
func CacheLookup(kind string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	cacheLookups.WithLabelValues(kind, result).Inc()
}

// ObserveIdPCall records the duration and outcome of a call to an identity
// provider that started at start.
func ObserveIdPCall(kind string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	idpCalls.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
}
