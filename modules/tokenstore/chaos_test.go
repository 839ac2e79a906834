package tokenstore

import (
	"context"
	"errors"
	"go.uber.org/zap"
	"math/rand"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// replica is one gateway process of the chaos test: an engine whose token
// call can be made to die (the process is killed while its refresh is at the
// token endpoint, before or after the server rotated the token).
type replica struct {
	m    *Manager
	kill atomic.Int32 // 1: die before the server answers, 2: die after it rotated
	dead chan struct{}
}

// TestChaosReplicas runs three replicas on one storage through many refresh
// cycles on a moving clock, with random kills at the token endpoint (a new
// replica takes the dead one's place, as a restart) and spells of storage
// refusing to store token sets. No grant may be lost: no invalid_grant, no
// family revocation. CHAOS_CYCLES sets the number of cycles and enables it.
func TestChaosReplicas(t *testing.T) {
	if os.Getenv("CHAOS_CYCLES") == "" {
		t.Skip("a soak: `make soak` (CHAOS_CYCLES=n) runs it")
	}
	chaosLog = zap.NewNop()
	if testing.Verbose() {
		chaosLog, _ = zap.NewDevelopment()
	}
	cycles := 150
	if n, err := strconv.Atoi(os.Getenv("CHAOS_CYCLES")); err == nil {
		cycles = n
	}
	st, fs, srv, c := setupFaulty(t)
	ctx := context.Background()
	release := make(chan struct{}) // ends the dead replicas' blocked calls
	defer close(release)
	var grantErrors atomic.Int64
	mk := func() *replica {
		r := &replica{dead: make(chan struct{}, 1)}
		r.m = newManager(st, srv, c)
		r.m.Logger = chaosLog
		r.m.LockTimeout, r.m.OrphanGrace, r.m.SaveRetry = 3*time.Second, time.Millisecond, time.Millisecond
		// The clock jumps a minute at a time; an owner renews its intent
		// every SaveRetry of real time, so an orphan must be older than a jump.
		r.m.OrphanAfter = 2 * time.Minute
		r.m.Refresh = func(ctx context.Context, ts *TokenSet) (*TokenSet, error) {
			switch r.kill.Load() {
			case 1:
				r.dead <- struct{}{}
				<-release
				return nil, errors.New("killed")
			case 2:
				srv.refresh(ctx, ts)
				r.dead <- struct{}{}
				<-release
				return nil, errors.New("killed")
			}
			out, err := srv.refresh(ctx, ts)
			var ge *GrantError
			if errors.As(err, &ge) {
				grantErrors.Add(1)
			}
			return out, err
		}
		return r
	}
	replicas := []*replica{mk(), mk(), mk()}
	rng := rand.New(rand.NewSource(9))
	var kills, faults, served, failed int
	faultLeft := 0
	for cycle := 0; cycle < cycles; cycle++ {
		c.Advance(56 * time.Minute) // into the refresh window of the current token
		switch n := rng.Intn(10); {
		case n < 2: // kill one replica while its refresh is at the token endpoint
			i := rng.Intn(len(replicas))
			victim := replicas[i]
			victim.kill.Store(int32(1 + rng.Intn(2)))
			go victim.m.Engine().Maintain(ctx, 0)
			select {
			case <-victim.dead:
				kills++
				// The dead process no longer keeps its lock file fresh: it
				// goes stale and the others take the lock again.
				st.Unlock(ctx, "jira")
			case <-time.After(time.Second):
				// another replica refreshed first; the victim lives on
				victim.kill.Store(0)
			}
			replicas[i] = mk() // restarted
		case n == 2 && faultLeft == 0: // storage stops storing token sets for a while
			fs.set(func(f *faultyStorage) { f.storeErr, f.storeOnly = errVolumeFull, "atlasgate/tokens/" })
			faultLeft = 1 + rng.Intn(2)
			faults++
		}
		for step := 0; step < 5; step++ {
			c.Advance(time.Minute)
			for _, r := range replicas {
				if _, err := r.m.Token(ctx); err == nil {
					served++
				} else {
					failed++
				}
				r.m.Engine().Maintain(ctx, 0)
			}
		}
		if faultLeft > 0 {
			if faultLeft--; faultLeft == 0 {
				fs.set(func(f *faultyStorage) { f.storeErr = nil })
			}
		}
	}
	fs.set(func(f *faultyStorage) { f.storeErr = nil })
	c.Advance(time.Hour)
	for _, r := range replicas {
		if _, err := r.m.Token(ctx); err != nil {
			t.Errorf("after the run: %v", err)
		}
	}
	t.Logf("%d cycles: %d token calls, %d kills at the token endpoint, %d storage faults, %d requests served, %d refused, %d invalid_grant, revoked=%v",
		cycles, srv.calls.Load(), kills, faults, served, failed, grantErrors.Load(), srv.revoked)
	if grantErrors.Load() != 0 || srv.revoked {
		t.Fatalf("grant lost: %d invalid_grant, revoked=%v", grantErrors.Load(), srv.revoked)
	}
}

var chaosLog *zap.Logger
