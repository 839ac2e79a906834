package policy

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// event collects one decision's audit fields while the request runs.
type event struct {
	start      time.Time
	r          *http.Request
	in         *Input
	decision   string // allow, deny, rate_limited, invalid_path
	rule       string
	reason     string
	credential string
	status     int
}

// finish emits the audit event and counts the decision. The event names the
// credential, never its secret, and no client credential.
func (h *Handler) finish(ev *event) {
	rule := ev.rule
	if rule == "" {
		rule = "none"
	}
	h.metrics.decided(h.Name, rule, ev.decision)
	c := h.audit.Check(zapcore.InfoLevel, "policy decision")
	if c == nil {
		return
	}
	// Room for every field: one allocation, not a grown copy.
	fields := make([]zap.Field, 0, 17)
	fields = append(fields,
		zap.String("event", "policy.decision"),
		zap.String("policy", h.Name),
		zap.String("decision", ev.decision),
		zap.String("rule", rule),
		zap.String("reason", ev.reason),
		zap.String("credential", ev.credential),
		zap.Int("status", ev.status),
		zap.Duration("duration", now().Sub(ev.start)),
		zap.String("method", ev.r.Method),
		zap.String("host", ev.r.Host),
	)
	if repl, ok := ev.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		id, _ := repl.GetString("http.request.uuid")
		fields = append(fields, zap.String("request_id", id))
	}
	if in := ev.in; in != nil {
		fields = append(fields, zap.String("path", in.Path), zap.String("product", in.Product),
			zap.String("client_ip", in.ClientIP.String()))
		if id := in.Identity; id != nil {
			fields = append(fields, zap.String("user", id.User), zap.String("provider", id.Authenticator),
				zap.String("kind", id.Kind))
		}
	}
	c.Write(fields...)
}

// mapDecision exposes the decision's credential and rule as placeholders: one
// provider (a closure) per request instead of two boxed strings in the
// replacer's map.
func mapDecision(repl *caddy.Replacer, credential, rule string) {
	repl.Map(func(key string) (any, bool) {
		switch key {
		case CredentialPlaceholder:
			return credential, true
		case RulePlaceholder:
			return rule, true
		}
		return nil, false
	})
}

// metrics are the policy's Prometheus counters in Caddy's registry.
type metrics struct {
	decisions *prometheus.CounterVec
	limited   *prometheus.CounterVec
}

func newMetrics(ctx caddy.Context) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "atlasgate", Subsystem: "policy", Name: "decisions_total",
			Help: "Access policy decisions by policy, rule (none: no rule matched) and decision (allow, deny, rate_limited, invalid_path).",
		}, []string{"policy", "rule", "decision"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "atlasgate", Subsystem: "policy", Name: "rate_limited_total",
			Help: "Requests the gateway refused with 429, by scope (identity, credential).",
		}, []string{"scope"}),
	}
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return m, nil
	}
	var err error
	if m.decisions, err = register(reg, m.decisions); err != nil {
		return nil, err
	}
	if m.limited, err = register(reg, m.limited); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector another handler registered.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		return are.ExistingCollector.(*prometheus.CounterVec), nil
	}
	return c, nil
}

func (m *metrics) decided(policy, rule, decision string) {
	if m != nil {
		m.decisions.WithLabelValues(policy, rule, decision).Inc()
	}
}

func (m *metrics) rateLimited(scope string) {
	if m != nil {
		m.limited.WithLabelValues(scope).Inc()
	}
}
