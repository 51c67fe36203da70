package format

import (
	"encoding/json"
	"fmt"
)

// Config is the repository's settings, sealed in the file "config".
type Config struct {
	Version int `json:"version"`
	// ID identifies the repository, 64 hex digits.
	ID string `json:"id"`
	// ChunkMin, ChunkAvg and ChunkMax are the content-defined chunker's sizes for files.
	ChunkMin uint32 `json:"chunk_min"`
	ChunkAvg uint32 `json:"chunk_avg"`
	ChunkMax uint32 `json:"chunk_max"`
	// ChunkSeed seeds the chunker's gear table, so boundaries depend on a secret.
	ChunkSeed uint64 `json:"chunk_seed"`
	// PackSize is the size at which a pack file is finished.
	PackSize uint32 `json:"pack_size"`
}

// EncodeConfig returns the JSON of c.
func EncodeConfig(c *Config) ([]byte, error) { return json.Marshal(c) }

// DecodeConfig parses and checks a config.
func DecodeConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.Version != Version {
		return nil, fmt.Errorf("config: unsupported repository version %d", c.Version)
	}
	if _, err := ParseID(c.ID); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.ChunkMin == 0 || c.ChunkMin > c.ChunkAvg || c.ChunkAvg > c.ChunkMax || c.ChunkMax > 64<<20 {
		return nil, fmt.Errorf("config: invalid chunk sizes %d/%d/%d", c.ChunkMin, c.ChunkAvg, c.ChunkMax)
	}
	if c.PackSize < 1<<20 || c.PackSize > 1<<30 {
		return nil, fmt.Errorf("config: invalid pack size %d", c.PackSize)
	}
	return &c, nil
}
