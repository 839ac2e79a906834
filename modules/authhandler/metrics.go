package authhandler

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts authentications by authenticator and outcome in Caddy's
// Prometheus registry.
type metrics struct {
	authentications *prometheus.CounterVec
}

func newMetrics(ctx caddy.Context) (*metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "atlasgate",
		Name:      "authentications_total",
		Help:      "Requests authenticated by atlasgate_auth, by authenticator and outcome (success, invalid, missing, unavailable).",
	}, []string{"authenticator", "outcome"})
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return &metrics{authentications: c}, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		// Several handlers in one config share the collector.
		c = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return &metrics{authentications: c}, nil
}

func (m *metrics) observe(authenticator, outcome string) {
	if m == nil {
		return
	}
	m.authentications.WithLabelValues(authenticator, outcome).Inc()
}
