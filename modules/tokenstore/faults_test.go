package tokenstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// faultyStorage wraps real storage and fails or slows its operations on
// demand: a full volume (Store fails), an unreachable store (everything
// fails), a slow disk, a lock held by a peer that died.
type faultyStorage struct {
	certmagic.Storage

	mu        sync.Mutex
	storeErr  error         // Store (and Delete) fail with it
	storeOnly string        // if set, storeErr hits only keys with this prefix
	loadErr   error         // Load fails with it
	lockErr   error         // Lock fails with it
	slow      time.Duration // every operation waits this long first
	loadHook  func(key string)
	storeHook func(key string)
}

var (
	errVolumeFull  = errors.New("write: no space left on device")
	errUnreachable = errors.New("dial tcp 10.0.0.9:6379: connect: connection refused")
)

func (f *faultyStorage) set(fn func(f *faultyStorage)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultyStorage) get() (storeErr, loadErr, lockErr error, slow time.Duration, lh, sh func(string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storeErr, f.loadErr, f.lockErr, f.slow, f.loadHook, f.storeHook
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *faultyStorage) storeFails(key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.storeOnly != "" && !strings.HasPrefix(key, f.storeOnly) {
		return nil
	}
	return f.storeErr
}

func (f *faultyStorage) Store(ctx context.Context, key string, value []byte) error {
	_, _, _, slow, _, hook := f.get()
	storeErr := f.storeFails(key)
	if err := wait(ctx, slow); err != nil {
		return err
	}
	if hook != nil {
		hook(key)
	}
	if storeErr != nil {
		return storeErr
	}
	return f.Storage.Store(ctx, key, value)
}

func (f *faultyStorage) Delete(ctx context.Context, key string) error {
	_, _, _, slow, _, _ := f.get()
	storeErr := f.storeFails(key)
	if err := wait(ctx, slow); err != nil {
		return err
	}
	if storeErr != nil {
		return storeErr
	}
	return f.Storage.Delete(ctx, key)
}

func (f *faultyStorage) Load(ctx context.Context, key string) ([]byte, error) {
	_, loadErr, _, slow, hook, _ := f.get()
	if err := wait(ctx, slow); err != nil {
		return nil, err
	}
	if hook != nil {
		hook(key)
	}
	if loadErr != nil {
		return nil, loadErr
	}
	return f.Storage.Load(ctx, key)
}

func (f *faultyStorage) Lock(ctx context.Context, name string) error {
	_, _, lockErr, slow, _, _ := f.get()
	if err := wait(ctx, slow); err != nil {
		return err
	}
	if lockErr != nil {
		return lockErr
	}
	return f.Storage.Lock(ctx, name)
}
