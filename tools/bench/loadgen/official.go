//go:build official

package main

// official.go — "-client official": drives the server with the official Apache Pegasus Go
// client (github.com/apache/incubator-pegasus/go-client). Built only with -tags official,
// after the module has been added to a copy of this go.mod from the Go module proxy (see
// ../run_bench.sh, BENCH_CLIENT=official); the default build needs nothing but the standard
// library.

import (
	"context"
	"time"

	"github.com/apache/incubator-pegasus/go-client/pegalog"
	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

type officialClient struct {
	c       pegasus.Client
	t       pegasus.TableConnector
	timeout time.Duration
}

func newOfficialClient(metas []string, table string, timeout time.Duration) (kvClient, error) {
	// The default logger writes ./pegasus.log in the working directory.
	pegalog.SetLogger(pegalog.StderrLogger)
	c := pegasus.NewClient(pegasus.Config{MetaServers: metas}) // exits the process on a bad meta list
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := c.OpenTable(ctx, table)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &officialClient{c: c, t: t, timeout: timeout}, nil
}

func (o *officialClient) Get(hk, sk []byte) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	v, err := o.t.Get(ctx, hk, sk)
	cancel()
	return v, v != nil, err
}

func (o *officialClient) Set(hk, sk, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	err := o.t.Set(ctx, hk, sk, value)
	cancel()
	return err
}

func (o *officialClient) Del(hk, sk []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	err := o.t.Del(ctx, hk, sk)
	cancel()
	return err
}

func (o *officialClient) Close() { o.c.Close() }
