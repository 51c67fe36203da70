package s3

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards TCP connections from a loopback port to target, and shows tap
// each chunk a client sends before forwarding it; tap may change the chunk. Tests
// use it to act at a chosen point of an upload.
type tcpProxy struct {
	Addr string // 127.0.0.1:PORT to connect to

	ln     net.Listener
	target string
	tap    func(p []byte)
	wg     sync.WaitGroup
}

// startProxy starts a tcpProxy to target, closed when t ends. tap is called from
// several goroutines.
func startProxy(t *testing.T, target string, tap func(p []byte)) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{Addr: ln.Addr().String(), ln: ln, target: target, tap: tap}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve() {
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	for {
		c, err := p.ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		conns.Go(func() { p.forward(c) })
	}
	mu.Lock()
	for _, c := range open {
		c.Close()
	}
	mu.Unlock()
	conns.Wait()
}

// forward copies client to the target through tap, and the answers back, until
// either side closes.
func (p *tcpProxy) forward(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(client, server)
		client.Close()
		close(done)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			p.tap(buf[:n])
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	server.Close()
	<-done
}
