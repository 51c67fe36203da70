package format

import (
	"strings"
	"testing"
)

// An image's lost ranges round-trip, and ranges outside the disk, overlapping or out
// of order are refused.
func TestImageLostRanges(t *testing.T) {
	s := sampleImageSnapshot()
	size := s.Image.Size
	s.Image.Lost = []ByteRange{{Offset: 0, Length: 512}, {Offset: 4096, Length: size - 4096}}
	b, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "lost ranges", got.Image.Lost, s.Image.Lost)

	for name, lost := range map[string][]ByteRange{
		"beyond the end": {{Offset: size - 10, Length: 11}},
		"negative":       {{Offset: -1, Length: 10}},
		"empty":          {{Offset: 0, Length: 0}},
		"overlapping":    {{Offset: 0, Length: 100}, {Offset: 99, Length: 10}},
		"out of order":   {{Offset: 200, Length: 10}, {Offset: 0, Length: 10}},
		"overflowing":    {{Offset: 1, Length: 1<<63 - 1}},
	} {
		s.Image.Lost = lost
		b, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeSnapshot(b); err == nil || !strings.Contains(err.Error(), "lost range") {
			t.Errorf("%s: decoded with %v", name, err)
		}
	}
}
