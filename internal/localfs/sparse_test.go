package localfs

import (
	"bytes"
	"fmt"
	"testing"
)

func TestIsZero(t *testing.T) {
	for n := 0; n <= 200; n++ {
		b := make([]byte, n)
		if !IsZero(b) {
			t.Fatalf("IsZero(%d zeros) = false", n)
		}
		for i := range b {
			b[i] = 0x80
			if IsZero(b) {
				t.Fatalf("IsZero(len %d, byte %d set) = true", n, i)
			}
			// Also off an 8-byte boundary of the underlying array.
			if i > 0 && IsZero(b[1:]) {
				t.Fatalf("IsZero(b[1:], len %d, byte %d set) = true", n, i)
			}
			b[i] = 0
		}
	}
}

var sinkBool bool

func BenchmarkIsZero(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		buf := make([]byte, size)
		b.Run(fmt.Sprintf("IsZero/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				sinkBool = IsZero(buf)
			}
		})
		// For comparison: bytes.Equal against a zero buffer (assembly memequal).
		zero := make([]byte, size)
		b.Run(fmt.Sprintf("bytesEqual/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				sinkBool = bytes.Equal(buf, zero)
			}
		})
	}
}
