package main

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Byte-exact frames from the spec (shared/spec/protocol.md §10).
const (
	x5 = "54484654000000000000003000000000000000290000000000000002000000000000 07d000003dde555d9839ecea8b30" +
		"800100010000001152 50435f525244425f525244425f474554000000020c00010000000400016873 00"
	x8 = "5448465400000000000000300000000000 00003e00000000000000010000000100 0003e800001ef05d9ad5b51c9a4ab3" +
		"80010001000000115250435f525244425f525244425f505554000000010c00010c0001000000060002686b736b" +
		"0c000200000001760800030000000000 00"
	x7 = "0000006700000006 4552525f4f4b80010002000000155250435f525244425f525244425f4745545f41434b00000002" +
		"0c0000080001000000000c000200000001760800030000000208000400000000 0b00060000000f3132372e302e302e313a33343830310000"
)

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRC64Vectors(t *testing.T) {
	for in, want := range map[string]uint64{"": 0, "h": 0x555D9839ECEA8B30, "hk": 0x5D9AD5B51C9A4AB3,
		"123456789": 0xAE8B14860A799888, "user_0001": 0xF8F4662A0063CA1A} {
		if got := pegasusHash([]byte(in)); got != want {
			t.Errorf("crc64(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestGetFrameX5(t *testing.T) {
	key := storageKey([]byte("h"), []byte("s"))
	got := request(rpcGet, 2, 2, 0, pegasusHash([]byte("h")), 2000, func(b []byte) []byte {
		return append(appendBlob(b, []byte{12, 0, 1}, key), 0)
	})
	if want := unhex(t, x5); string(got) != string(want) {
		t.Fatalf("get frame\n got %x\nwant %x", got, want)
	}
}

func TestPutFrameX8(t *testing.T) {
	key := storageKey([]byte("hk"), []byte("sk"))
	got := request(rpcPut, 1, 1, 1, pegasusHash([]byte("hk")), 1000, func(b []byte) []byte {
		b = append(b, 12, 0, 1)
		b = appendBlob(b, []byte{12, 0, 1}, key)
		b = appendBlob(b, []byte{12, 0, 2}, []byte("v"))
		b = append(b, 8, 0, 3, 0, 0, 0, 0)
		return append(b, 0, 0)
	})
	if want := unhex(t, x8); string(got) != string(want) {
		t.Fatalf("put frame\n got %x\nwant %x", got, want)
	}
}

func TestReadResponseX7(t *testing.T) {
	frame := unhex(t, x7)[4:]
	r := rd{b: frame}
	if e := string(r.bin()); e != "ERR_OK" {
		t.Fatal(e)
	}
	r.i32()
	if n := string(r.bin()); n != "RPC_RRDB_RRDB_GET_ACK" {
		t.Fatal(n)
	}
	if seq := r.i32(); seq != 2 {
		t.Fatal(seq)
	}
	status, value, err := rrdbStatus(&r, true)
	if err != nil || status != 0 || string(value) != "v" {
		t.Fatalf("status %d value %q err %v", status, value, err)
	}
}
