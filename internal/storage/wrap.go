package storage

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"time"
)

// WrapOptions configures Wrap. The zero value retries with the defaults and sets no
// connection limit.
type WrapOptions struct {
	// Connections is how many of Save, Load, Stat and Remove may run at once; 0 means
	// no limit. List is not limited, because its fn may call those.
	Connections int
	// Attempts is how often an operation is tried before its error is returned:
	// 0 means 5, 1 means no retries.
	Attempts int
	// BaseDelay is the wait before the first retry, doubled before each further one
	// (plus up to a quarter at random); 0 means 500 ms.
	BaseDelay time.Duration
	// MaxDelay caps the wait between attempts; 0 means 30 s.
	MaxDelay time.Duration
	// OnRetry, if not nil, is called before each wait with the operation (such as
	// "load data/ab12..."), the error it failed with, and the wait.
	OnRetry func(op string, err error, wait time.Duration)
}

// Wrap returns s with, stacked in this order, a limit of opts.Connections
// operations at once and retries with exponential backoff. Errors that retrying
// cannot cure are returned at once: those matching ErrNotExist, ErrExists,
// ErrInvalid or a context error, and any error once ctx is done (then ctx's error
// is returned).
//
// A retried Save that meets ErrExists after a failed attempt succeeds if the stored
// file equals data (the failed attempt stored it). A retried Remove reports
// ErrNotExist if a failed attempt did remove the file: a caller that only needs the
// file gone treats ErrNotExist as success. A retried List gives fn each name only
// once.
func Wrap(s Storage, opts WrapOptions) Storage {
	if opts.Connections > 0 {
		s = &limited{Storage: s, sem: make(chan struct{}, opts.Connections)}
	}
	if opts.Attempts == 0 {
		opts.Attempts = 5
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 500 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 30 * time.Second
	}
	if opts.Attempts > 1 {
		s = &retrying{Storage: s, opts: opts}
	}
	return s
}

// limited runs at most cap(sem) operations at once.
type limited struct {
	Storage
	sem chan struct{}
}

func (l *limited) acquire(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *limited) release() { <-l.sem }

// Connections is the limit: no more pack saves should run at once than it allows.
func (l *limited) Connections() int { return min(cap(l.sem), Connections(l.Storage)) }

func (l *limited) Save(ctx context.Context, h Handle, data []byte) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.Storage.Save(ctx, h, data)
}

func (l *limited) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	return l.Storage.Load(ctx, h, offset, length)
}

func (l *limited) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	if err := l.acquire(ctx); err != nil {
		return FileInfo{}, err
	}
	defer l.release()
	return l.Storage.Stat(ctx, h)
}

func (l *limited) Remove(ctx context.Context, h Handle) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.Storage.Remove(ctx, h)
}

// retrying retries failed operations; see Wrap.
type retrying struct {
	Storage
	opts WrapOptions
}

// Connections is what the wrapped storage says.
func (r *retrying) Connections() int { return Connections(r.Storage) }

// stop carries an error that must be returned without retrying.
type stop struct{ err error }

func (s stop) Error() string { return s.err.Error() }

// permanent reports whether retrying cannot cure err.
func permanent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrExists) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// retry calls fn until it succeeds, fails permanently, or has been tried
// opts.Attempts times, and returns its last error.
func (r *retrying) retry(ctx context.Context, op string, fn func() error) error {
	delay := r.opts.BaseDelay
	for attempt := 1; ; attempt++ {
		err := fn()
		var st stop
		switch {
		case err == nil:
			return nil
		case errors.As(err, &st):
			return st.err
		case permanent(err) || attempt >= r.opts.Attempts:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		wait := min(delay, r.opts.MaxDelay)
		wait += rand.N(wait/4 + 1)
		if r.opts.OnRetry != nil {
			r.opts.OnRetry(op, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay *= 2
	}
}

func (r *retrying) Save(ctx context.Context, h Handle, data []byte) error {
	failed := false
	return r.retry(ctx, "save "+h.String(), func() error {
		err := r.Storage.Save(ctx, h, data)
		if failed && errors.Is(err, ErrExists) {
			// A failed attempt may have stored the file after all.
			b, lerr := r.Storage.Load(ctx, h, 0, 0)
			if lerr == nil && bytes.Equal(b, data) {
				return nil
			}
			if lerr != nil && !permanent(lerr) {
				return lerr // compare on the next attempt
			}
		}
		failed = err != nil
		return err
	})
}

func (r *retrying) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	var b []byte
	err := r.retry(ctx, "load "+h.String(), func() (err error) {
		b, err = r.Storage.Load(ctx, h, offset, length)
		return err
	})
	return b, err
}

func (r *retrying) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	var fi FileInfo
	err := r.retry(ctx, "stat "+h.String(), func() (err error) {
		fi, err = r.Storage.Stat(ctx, h)
		return err
	})
	return fi, err
}

func (r *retrying) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	seen := map[string]bool{}
	return r.retry(ctx, "list "+string(t), func() error {
		var fnErr error
		err := r.Storage.List(ctx, t, func(fi FileInfo) error {
			if seen[fi.Name] {
				return nil
			}
			seen[fi.Name] = true
			fnErr = fn(fi)
			return fnErr
		})
		if fnErr != nil {
			return stop{fnErr}
		}
		return err
	})
}

func (r *retrying) Remove(ctx context.Context, h Handle) error {
	return r.retry(ctx, "remove "+h.String(), func() error { return r.Storage.Remove(ctx, h) })
}
