package main

// wire.go — the load generator's built-in Pegasus client ("-client wire", the default).
//
// Why it exists: the official go-client (github.com/apache/incubator-pegasus/go-client) is
// the preferred driver (official.go, build tag "official"), but the Go module proxy this
// project can reach refuses every version of it. This client is written from the project's
// spec (../../../../shared/spec/protocol.md §3.1, §4.1, §6.1, §6.3-§6.6) and puts the same
// bytes on the wire as the Go client does for query_cfg, get and put:
//
//   - THFT v0 48-byte header, strict TMessage, args struct field 1 (protocol.md §3.1, §3.4);
//   - routing: query_cfg on the meta, partition = crc64(hash key) % partition_count,
//     header partition_hash = crc64(hash key), thread_hash = app_id*7919+partition_index;
//   - one TCP connection per node (TCP_NODELAY), requests pipelined on it, one write per
//     request, replies matched by seqid (seqids start at 1, like the Go client);
//   - a header error or a non-zero in-body status (except kNotFound on get) is an error.
//
// Unlike the Go client it does not retry, refresh routing on errors or re-dial with a 60 s
// back-off: a benchmark wants to see errors, not hide them.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var crcTable = crc64.MakeTable(0x9a6c9329ac4bc9b5)

func pegasusHash(b []byte) uint64 { return crc64.Update(0, crcTable, b) }

const (
	rpcGet  = "RPC_RRDB_RRDB_GET"
	rpcPut  = "RPC_RRDB_RRDB_PUT"
	rpcDel  = "RPC_RRDB_RRDB_REMOVE"
	rpcQcfg = "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX"
)

var errTimeout = errors.New("ERR_TIMEOUT (client side)")

// ---------------------------------------------------------------------------------------
// frames

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendBlob(b []byte, typeAndID []byte, data []byte) []byte {
	b = append(b, typeAndID...)
	b = appendU32(b, uint32(len(data)))
	return append(b, data...)
}

// request builds a THFT v0 frame around an args-struct body (bytes after the seqid).
func request(name string, seq int32, appID, pidx int32, phash uint64, timeoutMs uint32, args func([]byte) []byte) []byte {
	b := make([]byte, 48, 48+64+len(name)+1200)
	copy(b, "THFT")
	binary.BigEndian.PutUint32(b[8:], 48)
	binary.BigEndian.PutUint32(b[24:], uint32(appID))
	binary.BigEndian.PutUint32(b[28:], uint32(pidx))
	binary.BigEndian.PutUint32(b[32:], timeoutMs)
	binary.BigEndian.PutUint32(b[36:], uint32(appID*7919+pidx))
	binary.BigEndian.PutUint64(b[40:], phash)
	b = appendU32(b, 0x80010001)
	b = appendU32(b, uint32(len(name)))
	b = append(b, name...)
	b = appendU32(b, uint32(seq))
	b = args(b)
	binary.BigEndian.PutUint32(b[16:], uint32(len(b)-48))
	return b
}

// storageKey = u16 hash key length | hash key | sort key (data-operations.md §2).
func storageKey(hk, sk []byte) []byte {
	k := make([]byte, 2, 2+len(hk)+len(sk))
	binary.BigEndian.PutUint16(k, uint16(len(hk)))
	k = append(k, hk...)
	return append(k, sk...)
}

// reader over a reply frame.
type rd struct {
	b   []byte
	p   int
	err error
}

func (r *rd) need(n int) bool {
	if r.err != nil {
		return false
	}
	if r.p+n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return false
	}
	return true
}
func (r *rd) u8() byte {
	if !r.need(1) {
		return 0
	}
	r.p++
	return r.b[r.p-1]
}
func (r *rd) i16() int16 {
	if !r.need(2) {
		return 0
	}
	r.p += 2
	return int16(binary.BigEndian.Uint16(r.b[r.p-2:]))
}
func (r *rd) i32() int32 {
	if !r.need(4) {
		return 0
	}
	r.p += 4
	return int32(binary.BigEndian.Uint32(r.b[r.p-4:]))
}
func (r *rd) i64() int64 {
	if !r.need(8) {
		return 0
	}
	r.p += 8
	return int64(binary.BigEndian.Uint64(r.b[r.p-8:]))
}
func (r *rd) bin() []byte {
	n := int(r.i32())
	if n < 0 {
		r.err = fmt.Errorf("negative length %d", n)
	}
	if !r.need(n) {
		return nil
	}
	r.p += n
	return r.b[r.p-n : r.p]
}

// skip a value of a plain (non-placeholder) Thrift type.
func (r *rd) skip(t byte) {
	switch t {
	case 2, 3:
		r.need(1)
		r.p++
	case 6:
		r.need(2)
		r.p += 2
	case 8:
		r.need(4)
		r.p += 4
	case 4, 10:
		r.need(8)
		r.p += 8
	case 11:
		r.bin()
	case 12:
		for r.err == nil {
			ft := r.u8()
			if ft == 0 {
				return
			}
			r.i16()
			r.skip(ft)
		}
	case 13:
		kt, vt, n := r.u8(), r.u8(), r.i32()
		for i := int32(0); i < n && r.err == nil; i++ {
			r.skip(kt)
			r.skip(vt)
		}
	case 14, 15:
		et, n := r.u8(), r.i32()
		for i := int32(0); i < n && r.err == nil; i++ {
			r.skip(et)
		}
	default:
		r.err = fmt.Errorf("cannot skip thrift type %d", t)
	}
}

type reply struct {
	hdrErr string // header error name
	body   rd     // positioned after the seqid
	err    error  // transport / timeout error
}

// rrdbStatus walks a read_response / update_response: returns error (field 1) and, for
// read_response, value (field 2, blob placeholder).
func rrdbStatus(r *rd, isGet bool) (int32, []byte, error) {
	if r.u8() != 12 || r.i16() != 0 {
		return 0, nil, fmt.Errorf("reply without result field 0")
	}
	var status int32
	var value []byte
	for r.err == nil {
		t := r.u8()
		if t == 0 {
			break
		}
		id := r.i16()
		switch {
		case id == 1 && t == 8:
			status = r.i32()
		case id == 2 && t == 12 && isGet:
			value = r.bin()
		default:
			r.skip(t)
		}
	}
	return status, value, r.err
}

// ---------------------------------------------------------------------------------------
// node connection

type pendingCall struct {
	ch       chan reply
	deadline int64
}

type nodeConn struct {
	addr    string
	conn    net.Conn
	wmu     sync.Mutex
	seq     int32
	mu      sync.Mutex
	pending map[int32]*pendingCall
	dead    error
	quit    chan struct{}
}

func dialNode(addr string) (*nodeConn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	n := &nodeConn{addr: addr, conn: c, pending: make(map[int32]*pendingCall), quit: make(chan struct{})}
	go n.readLoop()
	go n.sweepLoop()
	return n, nil
}

func (n *nodeConn) fail(err error) {
	n.mu.Lock()
	if n.dead == nil {
		n.dead = err
		close(n.quit)
	}
	p := n.pending
	n.pending = make(map[int32]*pendingCall)
	n.mu.Unlock()
	for _, c := range p {
		c.ch <- reply{err: err}
	}
	n.conn.Close()
}

func (n *nodeConn) readLoop() {
	br := bufio.NewReaderSize(n.conn, 256<<10)
	var lenb [4]byte
	for {
		if _, err := io.ReadFull(br, lenb[:]); err != nil {
			n.fail(fmt.Errorf("ERR_SESSION_RESET: %v", err))
			return
		}
		total := binary.BigEndian.Uint32(lenb[:])
		if total < 4 || total > 64<<20 {
			n.fail(fmt.Errorf("bad reply length %d", total))
			return
		}
		frame := make([]byte, total-4)
		if _, err := io.ReadFull(br, frame); err != nil {
			n.fail(fmt.Errorf("ERR_SESSION_RESET: %v", err))
			return
		}
		r := rd{b: frame}
		hdrErr := string(r.bin())
		ver := r.i32()
		var seq int32
		if ver < 0 { // strict
			r.bin()
			seq = r.i32()
		} else { // non-strict: name already started; ver was its length
			r.p += int(ver)
			r.u8()
			seq = r.i32()
		}
		if r.err != nil {
			n.fail(fmt.Errorf("bad reply frame: %v", r.err))
			return
		}
		n.mu.Lock()
		c := n.pending[seq]
		delete(n.pending, seq)
		n.mu.Unlock()
		if c != nil {
			c.ch <- reply{hdrErr: hdrErr, body: rd{b: frame, p: r.p}}
		}
	}
}

func (n *nodeConn) sweepLoop() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			var expired []*pendingCall
			n.mu.Lock()
			for s, c := range n.pending {
				if c.deadline < ns {
					expired = append(expired, c)
					delete(n.pending, s)
				}
			}
			n.mu.Unlock()
			for _, c := range expired {
				c.ch <- reply{err: errTimeout}
			}
		}
	}
}

var chanPool = sync.Pool{New: func() any { return make(chan reply, 1) }}

func (n *nodeConn) call(build func(seq int32) []byte, timeout time.Duration) reply {
	seq := atomic.AddInt32(&n.seq, 1)
	frame := build(seq)
	c := &pendingCall{ch: chanPool.Get().(chan reply), deadline: time.Now().Add(timeout).UnixNano()}
	n.mu.Lock()
	if n.dead != nil {
		err := n.dead
		n.mu.Unlock()
		chanPool.Put(c.ch)
		return reply{err: err}
	}
	n.pending[seq] = c
	n.mu.Unlock()
	n.wmu.Lock()
	n.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := n.conn.Write(frame)
	n.wmu.Unlock()
	if err != nil {
		n.fail(fmt.Errorf("ERR_SESSION_RESET: write: %v", err))
	}
	r := <-c.ch
	chanPool.Put(c.ch)
	return r
}

func (n *nodeConn) close() { n.fail(errors.New("closed")) }

// ---------------------------------------------------------------------------------------
// table client

type wireClient struct {
	appID   int32
	parts   []*nodeConn
	conns   map[string]*nodeConn
	timeout time.Duration
}

func addrString(v int64) string {
	u := uint64(v)
	ip := uint32(u >> 32)
	port := uint16(u >> 16)
	return fmt.Sprintf("%d.%d.%d.%d:%d", ip>>24, (ip>>16)&0xff, (ip>>8)&0xff, ip&0xff, port)
}

type tableConfig struct {
	err       string
	appID     int32
	count     int32
	primaries []string // by partition index
	ballots   []int64
}

// parseQueryCfg decodes query_cfg_response (idl-structs.md; placeholder types by schema).
func parseQueryCfg(r *rd) (*tableConfig, error) {
	if r.u8() != 12 || r.i16() != 0 {
		return nil, errors.New("query_cfg reply without result field 0")
	}
	cfg := &tableConfig{}
	type pc struct {
		idx     int32
		ballot  int64
		primary int64
	}
	var pcs []pc
	for r.err == nil {
		t := r.u8()
		if t == 0 {
			break
		}
		id := r.i16()
		switch {
		case id == 1 && t == 12:
			cfg.err = string(r.bin())
		case id == 2 && t == 8:
			cfg.appID = r.i32()
		case id == 3 && t == 8:
			cfg.count = r.i32()
		case id == 5 && t == 15:
			et, cnt := r.u8(), r.i32()
			if et != 12 {
				return nil, fmt.Errorf("partitions list of type %d", et)
			}
			for i := int32(0); i < cnt && r.err == nil; i++ {
				var p pc
				for r.err == nil {
					ft := r.u8()
					if ft == 0 {
						break
					}
					fid := r.i16()
					switch {
					case fid == 1 && ft == 12: // gpid: partition_index then app_id
						p.idx = r.i32()
						r.i32()
					case fid == 2 && ft == 10:
						p.ballot = r.i64()
					case fid == 4 && ft == 12:
						p.primary = r.i64()
					case (fid == 5 || fid == 6) && ft == 15: // list<rpc_address>
						r.u8()
						m := r.i32()
						r.need(int(m) * 8)
						r.p += int(m) * 8
					case fid == 9 && ft == 12: // host_port
						r.bin()
						r.i16()
						r.u8()
					case (fid == 10 || fid == 11) && ft == 15: // list<host_port>
						r.u8()
						m := r.i32()
						for j := int32(0); j < m && r.err == nil; j++ {
							r.bin()
							r.i16()
							r.u8()
						}
					default:
						r.skip(ft)
					}
				}
				pcs = append(pcs, p)
			}
		default:
			r.skip(t)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	cfg.primaries = make([]string, len(pcs))
	cfg.ballots = make([]int64, len(pcs))
	for i, p := range pcs {
		if cfg.err == "ERR_OK" && (p.idx < 0 || int(p.idx) >= len(pcs)) {
			return nil, fmt.Errorf("partition index %d out of range", p.idx)
		}
		if cfg.err != "ERR_OK" {
			p.idx = int32(i)
		}
		if p.primary != 0 {
			cfg.primaries[p.idx] = addrString(p.primary)
		}
		cfg.ballots[p.idx] = p.ballot
	}
	return cfg, nil
}

func queryConfig(meta, table string, timeout time.Duration) (*tableConfig, error) {
	n, err := dialNode(meta)
	if err != nil {
		return nil, err
	}
	defer n.close()
	r := n.call(func(seq int32) []byte {
		return request(rpcQcfg, seq, 0, 0, 0, uint32(timeout/time.Millisecond), func(b []byte) []byte {
			b = append(b, 12, 0, 1) // args.query
			b = append(b, 11, 0, 1) // app_name
			b = appendU32(b, uint32(len(table)))
			b = append(b, table...)
			b = append(b, 15, 0, 2, 8, 0, 0, 0, 0) // partition_indices = []
			return append(b, 0, 0)
		})
	}, timeout)
	if r.err != nil {
		return nil, r.err
	}
	if r.hdrErr != "ERR_OK" {
		return nil, errors.New(r.hdrErr)
	}
	return parseQueryCfg(&r.body)
}

func newWireClient(metas []string, table string, timeout time.Duration) (*wireClient, error) {
	var cfg *tableConfig
	var lastErr error
	tried := map[string]bool{}
	queue := append([]string{}, metas...)
	for len(queue) > 0 && len(tried) < 16 {
		m := queue[0]
		queue = queue[1:]
		if tried[m] {
			continue
		}
		tried[m] = true
		c, err := queryConfig(m, table, timeout)
		if err != nil {
			lastErr = fmt.Errorf("%s: %v", m, err)
			continue
		}
		if c.err == "ERR_FORWARD_TO_OTHERS" {
			if len(c.primaries) > 0 && c.primaries[0] != "" {
				queue = append([]string{c.primaries[0]}, queue...)
			}
			lastErr = fmt.Errorf("%s: ERR_FORWARD_TO_OTHERS", m)
			continue
		}
		if c.err != "ERR_OK" {
			return nil, fmt.Errorf("query_cfg(%s) on %s: %s", table, m, c.err)
		}
		cfg = c
		break
	}
	if cfg == nil {
		return nil, fmt.Errorf("no meta answered query_cfg(%s): %v", table, lastErr)
	}
	cnt := int(cfg.count)
	if cnt < 1 || len(cfg.primaries) != cnt {
		return nil, fmt.Errorf("invalid table configuration: count %d, %d partitions", cnt, len(cfg.primaries))
	}
	c := &wireClient{appID: cfg.appID, parts: make([]*nodeConn, cnt), conns: map[string]*nodeConn{}, timeout: timeout}
	for i, addr := range cfg.primaries {
		if addr == "" || cfg.ballots[i] <= 0 {
			c.Close()
			return nil, fmt.Errorf("partition %d has no primary (ballot %d)", i, cfg.ballots[i])
		}
		n := c.conns[addr]
		if n == nil {
			var err error
			if n, err = dialNode(addr); err != nil {
				c.Close()
				return nil, err
			}
			c.conns[addr] = n
		}
		c.parts[i] = n
	}
	return c, nil
}

func (c *wireClient) route(hk []byte) (int32, uint64, *nodeConn) {
	h := pegasusHash(hk)
	idx := int32(h % uint64(len(c.parts)))
	return idx, h, c.parts[idx]
}

func (c *wireClient) timeoutMs() uint32 { return uint32(c.timeout / time.Millisecond) }

func (c *wireClient) Get(hk, sk []byte) ([]byte, bool, error) {
	idx, h, n := c.route(hk)
	key := storageKey(hk, sk)
	r := n.call(func(seq int32) []byte {
		return request(rpcGet, seq, c.appID, idx, h, c.timeoutMs(), func(b []byte) []byte {
			b = appendBlob(b, []byte{12, 0, 1}, key)
			return append(b, 0)
		})
	}, c.timeout)
	if r.err != nil {
		return nil, false, r.err
	}
	if r.hdrErr != "ERR_OK" {
		return nil, false, errors.New(r.hdrErr)
	}
	status, value, err := rrdbStatus(&r.body, true)
	if err != nil {
		return nil, false, err
	}
	switch status {
	case 0:
		return value, true, nil
	case 1: // kNotFound
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("rocksdb status %d", status)
	}
}

func (c *wireClient) Set(hk, sk, value []byte) error {
	idx, h, n := c.route(hk)
	key := storageKey(hk, sk)
	r := n.call(func(seq int32) []byte {
		return request(rpcPut, seq, c.appID, idx, h, c.timeoutMs(), func(b []byte) []byte {
			b = append(b, 12, 0, 1) // args.update
			b = appendBlob(b, []byte{12, 0, 1}, key)
			b = appendBlob(b, []byte{12, 0, 2}, value)
			b = append(b, 8, 0, 3, 0, 0, 0, 0) // expire_ts_seconds = 0
			return append(b, 0, 0)
		})
	}, c.timeout)
	return writeResult(r)
}

func (c *wireClient) Del(hk, sk []byte) error {
	idx, h, n := c.route(hk)
	key := storageKey(hk, sk)
	r := n.call(func(seq int32) []byte {
		return request(rpcDel, seq, c.appID, idx, h, c.timeoutMs(), func(b []byte) []byte {
			b = appendBlob(b, []byte{12, 0, 1}, key)
			return append(b, 0)
		})
	}, c.timeout)
	return writeResult(r)
}

func (c *wireClient) Close() {
	for _, n := range c.conns {
		n.close()
	}
}

func splitMetas(s string) []string {
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// writeResult turns the reply of a put or remove into an error (transport, header or
// non-zero rocksdb status).
func writeResult(r reply) error {
	if r.err != nil {
		return r.err
	}
	if r.hdrErr != "ERR_OK" {
		return errors.New(r.hdrErr)
	}
	status, _, err := rrdbStatus(&r.body, false)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("rocksdb status %d", status)
	}
	return nil
}
