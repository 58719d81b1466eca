package main

import (
	"fmt"
	"time"
)

// kvClient is what the workload drives: one synchronous operation per call, safe for
// concurrent use by many goroutines.
type kvClient interface {
	// Get returns the value and whether the record exists.
	Get(hk, sk []byte) ([]byte, bool, error)
	Set(hk, sk, value []byte) error
	Del(hk, sk []byte) error
	Close()
}

func newClient(kind string, metas []string, table string, timeout time.Duration) (kvClient, error) {
	switch kind {
	case "wire":
		return newWireClient(metas, table, timeout)
	case "official":
		return newOfficialClient(metas, table, timeout)
	}
	return nil, fmt.Errorf("unknown -client %q (wire, official)", kind)
}
