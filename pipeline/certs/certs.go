package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Pool reads a PEM bundle of CA certificates; what names the setting in errors.
func Pool(what, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", what, path)
	}
	return pool, nil
}

// KeyPair reads a certificate and its key; both or neither must be given (nil, nil).
func KeyPair(what, certFile, keyFile string) (*tls.Certificate, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New(what + ": certificate and key go together")
	}
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &cert, nil
}
