package atlasgate

import (
	"net/http"
	"testing"
	"time"
)

// The verdict keeps the start of a run of equal answers, and the hour's
// counts forget what is older than 60 minutes.
func TestUpstreamVerdictAndHour(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	name := "unit-upstream"
	ObserveUpstream(name, 200, http.Header{"X-Ratelimit-Remaining": {"42"}}, t0)
	ObserveUpstream(name, 401, nil, t0.Add(time.Minute))
	ObserveUpstream(name, 401, nil, t0.Add(2*time.Minute))
	u := Upstream(name, t0.Add(2*time.Minute))
	if u.Verdict != UpstreamRejected || !u.Since.Equal(t0.Add(time.Minute)) || u.RequestsLastHour != 3 || u.ErrorsLastHour != 2 ||
		u.RateLimitRemaining == nil || *u.RateLimitRemaining != 42 {
		t.Fatalf("%+v", u)
	}
	ObserveUpstream(name, 0, nil, t0.Add(61*time.Minute))
	u = Upstream(name, t0.Add(61*time.Minute))
	if u.Verdict != UpstreamFailing || u.RequestsLastHour != 2 || u.ErrorsLastHour != 2 {
		t.Fatalf("an hour later: %+v", u)
	}
	ObserveUpstream(name, 503, http.Header{"Retry-After": {"5"}}, t0.Add(62*time.Minute))
	if u := Upstream(name, t0.Add(3*time.Hour)); u.Verdict != UpstreamRateLimited || u.RequestsLastHour != 0 {
		t.Fatalf("hours later: %+v", u)
	}
}
