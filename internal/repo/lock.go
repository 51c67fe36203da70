package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"cairn/internal/format"
	"cairn/internal/storage"
)

// Lock timing: a held lock is rewritten every lockRefresh; one older than
// lockStale is from a process that is gone.
const (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

// sharedLockWait is how long a shared lock keeps trying while an exclusive one is
// held: a backup that starts just as a prune or forget checks the locks (each then
// sees the other and steps back) gets in once that one has let go.
var sharedLockWait = 10 * time.Second

// ErrLocked is returned when another process holds a conflicting lock.
var ErrLocked = errors.New("repository is locked")

// Lock is a lock held on the repository: shared (backups, checks) or exclusive
// (forget, prune, repair). Shared locks go together; an exclusive lock goes alone.
type Lock struct {
	r         *Repository
	exclusive bool
	mu        sync.Mutex
	name      ID
	stop      chan struct{}
	done      chan struct{}
}

// Lock takes a lock, or fails with ErrLocked naming who holds a conflicting one.
// Stale locks (from a process on this host that is gone, or not refreshed for 30
// minutes) are ignored.
//
// A shared lock that meets an exclusive one tries again for up to 10 seconds
// before it fails; an exclusive lock fails at once.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	deadline := time.Now().Add(sharedLockWait)
	wait := 50 * time.Millisecond
	for {
		l, err := r.tryLock(ctx, exclusive)
		if err == nil || exclusive || !errors.Is(err, ErrLocked) || time.Now().Add(wait).After(deadline) {
			return l, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		wait = min(2*wait, time.Second)
	}
}

// tryLock writes a lock file and keeps it if no other lock conflicts with it.
func (r *Repository) tryLock(ctx context.Context, exclusive bool) (*Lock, error) {
	l := &Lock{r: r, exclusive: exclusive, stop: make(chan struct{}), done: make(chan struct{})}
	name, err := l.write(ctx)
	if err != nil {
		return nil, err
	}
	l.name = name
	// Check after writing, so that two processes locking at once see each other.
	if err := r.conflicts(ctx, name, exclusive); err != nil {
		_ = r.st.Remove(context.WithoutCancel(ctx), storage.Handle{Type: storage.LockFile, Name: name.String()})
		return nil, err
	}
	go l.refresh()
	return l, nil
}

func (l *Lock) write(ctx context.Context) (ID, error) {
	host, _ := os.Hostname()
	b, err := format.EncodeLock(&format.Lock{Time: time.Now().UTC(), Exclusive: l.exclusive, Host: host, PID: os.Getpid(), User: currentUser()})
	if err != nil {
		return ID{}, err
	}
	id, err := l.r.saveFile(ctx, storage.LockFile, b)
	if err != nil {
		return ID{}, fmt.Errorf("write lock: %w", err)
	}
	return id, nil
}

// conflicts returns ErrLocked if a live lock other than mine conflicts with a lock
// of the given kind.
func (r *Repository) conflicts(ctx context.Context, mine ID, exclusive bool) error {
	files, err := r.ListFiles(ctx, storage.LockFile)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	host, _ := os.Hostname()
	for _, f := range files {
		id, err := ParseID(f.Name)
		if err != nil || id == mine {
			continue
		}
		b, err := r.loadFile(ctx, storage.LockFile, id)
		if storage.IsNotExist(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("lock %s cannot be read: %w", id.Short(), err)
		}
		other, err := format.DecodeLock(b)
		if err != nil {
			return fmt.Errorf("lock %s: %w", id.Short(), err)
		}
		if stale(other, host) || (!exclusive && !other.Exclusive) {
			continue
		}
		kind := "a shared"
		if other.Exclusive {
			kind = "an exclusive"
		}
		return fmt.Errorf("%w: %s lock is held by PID %d on %s since %s", ErrLocked, kind, other.PID, other.Host, other.Time.Local().Format("2006-01-02 15:04:05"))
	}
	return nil
}

// stale reports whether a lock is left by a process that is gone.
func stale(l *format.Lock, host string) bool {
	if time.Since(l.Time) > lockStale {
		return true
	}
	if l.Host != host || l.PID <= 0 {
		return false
	}
	return processGone(l.PID)
}

// refresh rewrites the lock file every lockRefresh until Unlock.
func (l *Lock) refresh() {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx := context.Background()
			name, err := l.write(ctx)
			if err != nil {
				continue // try again next time; the old file still holds
			}
			l.mu.Lock()
			old := l.name
			l.name = name
			l.mu.Unlock()
			_ = l.r.st.Remove(ctx, storage.Handle{Type: storage.LockFile, Name: old.String()})
		}
	}
}

// Unlock removes the lock.
func (l *Lock) Unlock() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.st.Remove(context.Background(), storage.Handle{Type: storage.LockFile, Name: l.name.String()})
}
