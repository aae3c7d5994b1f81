package eventlog

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// No ClickHouse server can be had on these machines, so the TLS and credential options
// are tested against the real driver and a listener that speaks TLS and reads the
// driver's first packet (the native protocol's client hello: name, version, database,
// user, password), then hangs up.

type hello struct{ database, user, password string }

func readHello(r *bufio.Reader) (hello, error) {
	str := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > 1<<16 {
			return "", io.ErrUnexpectedEOF
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	if kind, err := binary.ReadUvarint(r); err != nil || kind != 0 {
		return hello{}, io.ErrUnexpectedEOF
	}
	if _, err := str(); err != nil { // client name
		return hello{}, err
	}
	for range 3 { // major, minor, protocol revision
		if _, err := binary.ReadUvarint(r); err != nil {
			return hello{}, err
		}
	}
	var h hello
	var err error
	for _, f := range []*string{&h.database, &h.user, &h.password} {
		if *f, err = str(); err != nil {
			return h, err
		}
	}
	return h, nil
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clickhouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestServerTLSAndCredentials(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hellos := make(chan hello, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if h, err := readHello(bufio.NewReader(c)); err == nil {
					hellos <- h
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Over TLS verified with the CA, the user and password of the options override the DSN's.
	_, err = OpenServer(ctx, "clickhouse://dsnuser:dsnpass@"+ln.Addr().String()+"/events",
		Options{Server: ServerAuth{TLS: &tls.Config{RootCAs: pool}, User: "kprobe", Password: "s3cret"}})
	if err == nil {
		t.Fatal("OpenServer succeeded against a listener that only reads the hello")
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "dsnpass") {
		t.Errorf("the error shows a password: %v", err)
	}
	select {
	case h := <-hellos:
		if h != (hello{database: "events", user: "kprobe", password: "s3cret"}) {
			t.Errorf("hello over TLS: %+v", h)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the driver sent no hello over TLS")
	}

	// Without the CA the driver refuses the server before it sends anything.
	if _, err := OpenServer(ctx, ln.Addr().String(), Options{Server: ServerAuth{TLS: &tls.Config{}, User: "kprobe", Password: "s3cret"}}); err == nil {
		t.Fatal("OpenServer trusted an unknown CA")
	}
	select {
	case h := <-hellos:
		t.Errorf("credentials sent to an unverified server: %+v", h)
	default:
	}
}

func TestServerOptions(t *testing.T) {
	o, err := serverOptions("clickhouse://u:p@ch:9440/db?secure=true", ServerAuth{})
	if err != nil || o.Auth.Username != "u" || o.Auth.Password != "p" || o.TLS == nil {
		t.Errorf("DSN options: %+v, %v", o, err)
	}
	o, err = serverOptions("ch:9000", ServerAuth{User: "x", Password: "y"})
	if err != nil || o.Auth.Username != "x" || o.Auth.Password != "y" || o.TLS != nil || o.Addr[0] != "ch:9000" {
		t.Errorf("plain options: %+v, %v", o, err)
	}
}
