package release

import (
	"io"
	"sync"
)

// Sizes of the read-ahead between inflating and writing files: 8 blocks of
// 256 KiB let the inflating goroutine run up to 2 MiB ahead, enough to ride
// over a burst of small files without holding much memory.
const (
	pipeBlocks    = 8
	pipeBlockSize = 256 << 10
)

// blockPipe carries the decompressed archive from the goroutine that
// downloads, hashes and inflates it to the goroutine that writes files, a
// few blocks ahead, so that on two cores inflating overlaps the file system
// calls. io.Pipe would not do: each of its writes waits until the reader
// has taken all of it, so the two sides would mostly take turns.
//
// One goroutine runs fill; another reads. The reader must call close once
// done (also on error): it stops fill and waits for it to return, after
// which everything fill's reader touched is the caller's again.
type blockPipe struct {
	full     chan []byte   // filled blocks, in stream order; closed after the last
	free     chan []byte   // blocks the reader has finished with
	stop     chan struct{} // closed by close: fill returns at its next block
	stopOnce sync.Once
	done     chan struct{} // closed when fill has returned
	err      error         // why fill ended (io.EOF: the end); set before full is closed

	block []byte // the block being read
	rest  []byte // its unread part
}

func newBlockPipe() *blockPipe {
	p := &blockPipe{
		full: make(chan []byte, pipeBlocks),
		free: make(chan []byte, pipeBlocks),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range pipeBlocks {
		p.free <- make([]byte, pipeBlockSize)
	}
	return p
}

// fill copies r into the pipe until r fails or ends (its error, io.EOF at
// the end, is what Read returns after the last byte) or close is called.
func (p *blockPipe) fill(r io.Reader) {
	defer close(p.done)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		// Fill the block whole: fewer, larger hand-offs. A short read is
		// not an end; only an error is.
		b = b[:cap(b)]
		n := 0
		var err error
		for n < len(b) && err == nil {
			var m int
			m, err = r.Read(b[n:])
			n += m
		}
		if n > 0 {
			select {
			case p.full <- b[:n]:
			case <-p.stop:
				return
			}
		}
		if err != nil {
			p.err = err
			close(p.full)
			return
		}
	}
}

// Read returns the stream's bytes in order, then fill's final error.
func (p *blockPipe) Read(b []byte) (int, error) {
	for len(p.rest) == 0 {
		if p.block != nil {
			p.free <- p.block // never blocks: free holds every block
			p.block = nil
		}
		blk, ok := <-p.full
		if !ok {
			return 0, p.err
		}
		p.block, p.rest = blk, blk
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

// close stops fill and waits until it has returned. It may be called more
// than once.
func (p *blockPipe) close() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
}
