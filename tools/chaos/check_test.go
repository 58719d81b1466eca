package main

// The checker must fail on non-linearizable histories, pass linearizable ones and never turn a
// timed-out check into a success. Hand-made histories; times in ns.

import (
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func w(c, key int, v string, call, ret int64) Record {
	return Record{Client: c, Kind: opWrite, Key: key, Value: v, Call: call, Return: ret, Status: statusOK}
}

func wFailed(c, key int, v string, call, ret int64) Record {
	return Record{Client: c, Kind: opWrite, Key: key, Value: v, Call: call, Return: ret, Status: statusFailed, Err: "context deadline exceeded"}
}

func r(c, key int, v string, call, ret int64) Record {
	return Record{Client: c, Kind: opRead, Key: key, Value: v, Call: call, Return: ret, Status: statusOK}
}

func rFailed(c, key int, call, ret int64) Record {
	return Record{Client: c, Kind: opRead, Key: key, Call: call, Return: ret, Status: statusFailed, Err: "ERR_TIMEOUT"}
}

func verdict(t *testing.T, recs []Record) CheckResult {
	t.Helper()
	var res [2]CheckResult
	for i, prune := range []bool{false, true} { // pruning must never change the verdict
		res[i] = Check(Prepare(recs, prune), 10*time.Second)
	}
	if res[0].Verdict != res[1].Verdict {
		t.Fatalf("pruning changed the verdict: %v without, %v with", res[0].Verdict, res[1].Verdict)
	}
	return res[1]
}

func TestLinearizableHistoryPasses(t *testing.T) {
	h := []Record{
		r(0, 0, "", 0, 5),                     // initial: not found
		w(0, 0, "a", 10, 20),                  // ok write
		r(1, 0, "", 12, 18),                   // concurrent with the write: old value allowed
		r(2, 0, "a", 15, 25),                  // concurrent: new value allowed
		r(1, 0, "a", 30, 40),                  // after the write: must see it
		wFailed(2, 0, "b", 45, 60),            // unknown outcome...
		rFailed(0, 0, 46, 70),                 // failed read: dropped
		r(1, 0, "a", 50, 55),                  // ...not applied yet
		r(0, 0, "b", 200, 210),                // ...applied late, after the client gave up: allowed
		r(1, 0, "b", 220, 230),                //
		wFailed(1, 0, "never-seen", 240, 250), // unknown, never observed: harmless
		r(0, 0, "b", 260, 270),                //
		w(1, 1, "x", 0, 10),                   // another key, independent
		r(0, 1, "x", 11, 12),
	}
	res := verdict(t, h)
	if res.Verdict != Linearizable {
		t.Fatalf("verdict %v, want linearizable", res.Verdict)
	}
	if res.Verdict.ExitCode() != 0 {
		t.Fatalf("exit code %d", res.Verdict.ExitCode())
	}
}

func TestReadOfValueNeverWrittenIsViolation(t *testing.T) {
	h := []Record{
		w(0, 0, "a", 0, 10),
		r(1, 0, "zzz", 20, 30), // nobody wrote zzz
	}
	p := Prepare(h, true)
	if p.NeverWritten != 1 {
		t.Fatalf("NeverWritten = %d, want 1", p.NeverWritten)
	}
	res := verdict(t, h)
	if res.Verdict != Violation || res.Verdict.ExitCode() != 2 {
		t.Fatalf("verdict %v, want a violation (exit 2)", res.Verdict)
	}
}

func TestStaleReadAfterCompletedWriteIsViolation(t *testing.T) {
	h := []Record{
		w(0, 0, "a", 0, 10),
		w(0, 0, "b", 20, 30), // completed before the read started
		r(1, 0, "a", 40, 50), // stale
	}
	if res := verdict(t, h); res.Verdict != Violation {
		t.Fatalf("verdict %v, want a violation", res.Verdict)
	}
}

func TestReadOfInitialValueAfterCompletedWriteIsViolation(t *testing.T) {
	h := []Record{
		w(0, 0, "a", 0, 10),
		r(1, 0, "", 40, 50), // the write was acknowledged: "not found" is lost data
	}
	if res := verdict(t, h); res.Verdict != Violation {
		t.Fatalf("verdict %v, want a violation", res.Verdict)
	}
}

func TestUnknownWriteCannotBeUndone(t *testing.T) {
	h := []Record{
		w(0, 0, "a", 0, 10),
		wFailed(1, 0, "b", 20, 30),
		r(2, 0, "b", 40, 50), // the unknown write took effect...
		r(2, 0, "a", 60, 70), // ...so the old value cannot come back
	}
	if res := verdict(t, h); res.Verdict != Violation {
		t.Fatalf("verdict %v, want a violation", res.Verdict)
	}
}

func TestViolatingKeyIsReported(t *testing.T) {
	h := []Record{
		w(0, 0, "a", 0, 10), r(1, 0, "a", 20, 30), // key 0 fine
		w(0, 1, "x", 0, 10), w(0, 1, "y", 20, 30), r(1, 1, "x", 40, 50), // key 1 stale
		w(0, 2, "p", 0, 10), r(1, 2, "p", 20, 30), // key 2 fine
	}
	res := verdict(t, h)
	if res.Verdict != Violation || len(res.ViolatingKeys) != 1 || res.ViolatingKeys[0] != 1 {
		t.Fatalf("verdict %v keys %v, want a violation on key 1 only", res.Verdict, res.ViolatingKeys)
	}
	path := filepath.Join(t.TempDir(), "viz.html")
	notes := []Annotation{{Start: 15, End: 35, Description: "kill replica2"}}
	if err := Visualize(Prepare(h, true), res.ViolatingKeys, notes, 5*time.Second, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualisation not written: %v (%d bytes)", err, len(b))
	}
}

// A history the checker cannot finish within a short bound (many mutually concurrent writes,
// each observed by a concurrent read, then an impossible read): the verdict must be Unknown
// (exit 3), never a success.
func TestTimeoutIsUnknownNotSuccess(t *testing.T) {
	var h []Record
	const n = 22
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("v%d", i)
		h = append(h, w(i, 0, v, 0, 1000), r(n+i, 0, v, 0, 1000))
	}
	h = append(h, r(0, 0, "v0", 2000, 2100), r(1, 0, "v1", 2200, 2300), r(0, 0, "v0", 2400, 2500))
	start := time.Now()
	res := Check(Prepare(h, true), 300*time.Millisecond)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the check took %s despite a 300ms bound", took)
	}
	if res.Verdict == Linearizable {
		t.Fatalf("a history that is not linearizable was reported linearizable")
	}
	if res.Verdict != Unknown || res.Verdict.ExitCode() != 3 || res.Verdict.String() != "unknown" {
		t.Fatalf("verdict %v (exit %d), want unknown (exit 3)", res.Verdict, res.Verdict.ExitCode())
	}
}

func TestHashKeysSpreadOverPartitions(t *testing.T) {
	tab := crc64.MakeTable(0x9a6c9329ac4bc9b5)
	keys := hashKeys(20, 8)
	seen := map[string]bool{}
	for i, k := range keys {
		if seen[k] {
			t.Fatalf("duplicate key %s", k)
		}
		seen[k] = true
		if got := int(crc64.Checksum([]byte(k), tab) % 8); got != i%8 {
			t.Fatalf("key %d (%s) on partition %d, want %d", i, k, got, i%8)
		}
	}
}
