package credentials

import (
	"container/list"
	"sync"

	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

// maxUserEngines bounds the per-user token managers kept in memory. A
// manager is small (the decrypted set and a few counters); the grants
// themselves live in storage, so an evicted caller's next request reads
// theirs again.
const maxUserEngines = 10000

// userEngines is an LRU of the per-user managers of one credential. Each
// manager caches "no grant" itself (briefly), so callers who never
// authorized do not cost a storage read per request either.
type userEngines struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent; values *userEntry
	byKey map[string]*list.Element
}

type userEntry struct {
	name string
	mgr  *tokenstore.Manager
}

func newUserEngines(max int) *userEngines {
	return &userEngines{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns name's manager, creating it with mk and evicting the least
// recently used ones beyond the bound — never one whose refreshed set is not
// stored yet: it holds the only copy of that refresh token.
func (u *userEngines) get(name string, mk func(string) *tokenstore.Manager) *tokenstore.Manager {
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.byKey[name]; ok {
		u.order.MoveToFront(el)
		return el.Value.(*userEntry).mgr
	}
	m := mk(name)
	u.byKey[name] = u.order.PushFront(&userEntry{name: name, mgr: m})
	for el := u.order.Back(); u.order.Len() > u.max && el != nil; {
		prev := el.Prev()
		if e := el.Value.(*userEntry); !e.mgr.Engine().Unsaved() {
			u.order.Remove(el)
			delete(u.byKey, e.name)
		}
		el = prev
	}
	return m
}

// peek returns name's manager if it is cached, without making it recent.
func (u *userEngines) peek(name string) *tokenstore.Manager {
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.byKey[name]; ok {
		return el.Value.(*userEntry).mgr
	}
	return nil
}

// len is the number of cached managers.
func (u *userEngines) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.order.Len()
}
