//go:build !official

package main

import (
	"errors"
	"time"
)

func newOfficialClient(metas []string, table string, timeout time.Duration) (kvClient, error) {
	return nil, errors.New("this loadgen was built without the official go-client " +
		"(build with -tags official after `go get github.com/apache/incubator-pegasus/go-client@<version>`)")
}
