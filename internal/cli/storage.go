package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cairn/internal/repo"
	"cairn/internal/storage"
	"cairn/internal/storage/local"
	"cairn/internal/storage/s3"
	"cairn/internal/storage/sftp"
)

// isRemote reports whether spec names an sftp or s3 repository.
func isRemote(spec string) bool {
	return strings.HasPrefix(spec, "sftp:") || strings.HasPrefix(spec, "s3:")
}

// openStorage opens the storage of l, or makes it when create is set: a local
// folder, or an sftp or s3 location with retries and a bounded number of
// connections.
func (g *globalOptions) openStorage(ctx context.Context, l location, create bool) (storage.Storage, error) {
	var (
		st  storage.Storage
		err error
	)
	switch {
	case strings.HasPrefix(l.spec, "sftp:"):
		cfg, perr := sftp.ParseLocation(l.spec)
		if perr != nil {
			return nil, usageError("%v", perr)
		}
		if create {
			st, err = nilIfError(sftp.Create(ctx, cfg))
		} else {
			st, err = nilIfError(sftp.Open(ctx, cfg))
		}
	case strings.HasPrefix(l.spec, "s3:"):
		cfg, perr := s3.ParseLocation(l.spec)
		if perr != nil {
			return nil, usageError("%v", perr)
		}
		if create {
			st, err = nilIfError(s3.Create(ctx, cfg))
		} else {
			st, err = nilIfError(s3.Open(ctx, cfg))
		}
	default:
		if create {
			return local.Create(l.localPath())
		}
		return local.Open(l.localPath())
	}
	if err != nil {
		return nil, err
	}
	// Pack saves use Connections(st) at once; the limit leaves room beside them
	// for the loads of index files, trees and locks.
	return storage.Wrap(st, storage.WrapOptions{
		Connections: 2 * storage.Connections(st),
		OnRetry: func(op string, err error, wait time.Duration) {
			// The providers' errors already name the operation.
			msg := strings.TrimPrefix(err.Error(), op+": ")
			g.printer.Warning(op, fmt.Sprintf("%s; retrying in %s", msg, wait.Round(100*time.Millisecond)))
		},
	}), nil
}

// nilIfError returns a nil interface, not a typed nil, when err is set.
func nilIfError[S storage.Storage](s S, err error) (storage.Storage, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openOptions are the engine's settings for l: the local cache for a remote
// repository, unless --no-cache or the command reads the storage itself (check,
// repair), where a cached copy would hide damage to the stored one.
func (g *globalOptions) openOptions(l location) repo.OpenOptions {
	if !isRemote(l.spec) || g.noCache || g.bypassCache {
		return repo.OpenOptions{}
	}
	dir := g.cacheDir
	if dir == "" {
		var err error
		if dir, err = repo.DefaultCacheDir(); err != nil {
			g.printer.Warning("cache", fmt.Sprintf("%v; going on without a cache", err))
			return repo.OpenOptions{}
		}
	}
	return repo.OpenOptions{CacheDir: dir, Warn: func(err error) {
		g.printer.Warning("cache", fmt.Sprintf("%v; going on without a cache", err))
	}}
}
