package mem_test

import (
	"testing"

	"cairn/internal/storage"
	"cairn/internal/storage/mem"
	"cairn/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return mem.New() })
}
