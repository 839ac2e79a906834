package policy

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	// Time zones must resolve on hosts and containers without zoneinfo.
	_ "time/tzdata"
)

// TimeWindow is an access condition on the wall clock of a time zone.
type TimeWindow struct {
	// Days of the week: `Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri` or `*`. Default: every day.
	Days string `json:"days,omitempty"`
	// Start and end as HH:MM (24 h), end exclusive. An end before the start
	// spans midnight and belongs to the start's day. Default: the whole day.
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// IANA time zone, e.g. `Europe/Berlin`. Default: UTC.
	TimeZone string `json:"time_zone,omitempty"`
}

type window struct {
	days       [7]bool
	start, end int // minutes after midnight; start == end: whole day
	loc        *time.Location
}

var weekdays = map[string]time.Weekday{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

func (tw TimeWindow) compile() (window, error) {
	var w window
	days := strings.ToLower(strings.TrimSpace(tw.Days))
	if days == "" || days == "*" {
		w.days = [7]bool{true, true, true, true, true, true, true}
	} else {
		for _, part := range strings.Split(days, ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, ok1 := weekdays[from]
			b, ok2 := weekdays[to]
			if !isRange {
				b, ok2 = a, ok1
			}
			if !ok1 || !ok2 {
				return w, fmt.Errorf("days %q: use Mon..Sun, ranges (Mon-Fri), lists (Sat,Sun) or *", tw.Days)
			}
			for d := a; ; d = (d + 1) % 7 {
				w.days[d] = true
				if d == b {
					break
				}
			}
		}
	}
	var err error
	if tw.Start != "" || tw.End != "" {
		if w.start, err = hhmm(tw.Start); err != nil {
			return w, err
		}
		if w.end, err = hhmm(tw.End); err != nil {
			return w, err
		}
		if w.start == w.end {
			return w, fmt.Errorf("time window %s-%s is empty", tw.Start, tw.End)
		}
	}
	w.loc = time.UTC
	if tw.TimeZone != "" {
		if w.loc, err = time.LoadLocation(tw.TimeZone); err != nil {
			return w, fmt.Errorf("time zone %q: %v", tw.TimeZone, err)
		}
	}
	return w, nil
}

func hhmm(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, fmt.Errorf("time %q: use HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (w window) contains(t time.Time) bool {
	lt := t.In(w.loc)
	day := lt.Weekday()
	m := lt.Hour()*60 + lt.Minute()
	switch {
	case w.start == w.end:
		return w.days[day]
	case w.start < w.end:
		return w.days[day] && m >= w.start && m < w.end
	}
	// Spans midnight: the early hours belong to the previous day's window.
	return w.days[day] && m >= w.start || w.days[(day+6)%7] && m < w.end
}

// parsePrefixes parses CIDRs and bare addresses.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("invalid CIDR %q: %v", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("invalid IP address or CIDR %q", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address the request came from. When the peer is a trusted
// proxy, X-Forwarded-For is read from the right, skipping trusted proxies: the
// first untrusted address is the client (the left part can be forged by it).
func clientIP(remoteAddr string, h http.Header, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if len(trusted) == 0 || !containsAddr(trusted, peer) {
		return peer
	}
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return peer // a garbled header: trust only what we saw
		}
		a = a.Unmap()
		if !containsAddr(trusted, a) {
			return a
		}
		peer = a
	}
	return peer
}
