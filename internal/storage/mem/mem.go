// Package mem is a Storage held in memory, for tests.
package mem

import (
	"context"
	"fmt"
	"sync"

	"cairn/internal/storage"
)

// Storage keeps files in a map. The zero value is not usable; call New.
type Storage struct {
	mu    sync.RWMutex
	files map[storage.Handle][]byte
}

var _ storage.Storage = (*Storage)(nil)

// New returns an empty memory storage.
func New() *Storage { return &Storage{files: map[storage.Handle][]byte{}} }

// Location implements storage.Storage.
func (s *Storage) Location() string { return "mem:" }

// Save implements storage.Storage.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[h]; ok {
		return fmt.Errorf("save %v: %w", h, storage.ErrExists)
	}
	s.files[h] = append([]byte(nil), data...)
	return nil
}

// Load implements storage.Storage.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := h.Valid(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.files[h]
	if !ok {
		return nil, fmt.Errorf("load %v: %w", h, storage.ErrNotExist)
	}
	size := int64(len(b))
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		return nil, storage.Invalidf("load %v: offset %d length %d outside file of %d bytes", h, offset, length, size)
	}
	end := size
	if length > 0 {
		end = offset + length
	}
	return append([]byte(nil), b[offset:end]...), nil
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.files[h]
	if !ok {
		return storage.FileInfo{}, fmt.Errorf("stat %v: %w", h, storage.ErrNotExist)
	}
	return storage.FileInfo{Name: h.Name, Size: int64(len(b))}, nil
}

// List implements storage.Storage.
func (s *Storage) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	var infos []storage.FileInfo
	for h, b := range s.files {
		if h.Type == t {
			infos = append(infos, storage.FileInfo{Name: h.Name, Size: int64(len(b))})
		}
	}
	s.mu.RUnlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[h]; !ok {
		return fmt.Errorf("remove %v: %w", h, storage.ErrNotExist)
	}
	delete(s.files, h)
	return nil
}

// Close implements storage.Storage.
func (s *Storage) Close() error { return nil }
