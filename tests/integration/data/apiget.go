// apiget: a minimal in-cluster API client for tier R tests (built FROM scratch by the test, standard library only).
//
// Usage: apiget TARGET PATH [token|anonymous]
// TARGET is host:port, or "service" for $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (what client-go's
// in-cluster config dials). Like client-go it trusts only the service-account CA bundle and checks that the
// apiserver's certificate names the address it dialled; with "token" it sends the pod's service-account token.
// Prints "STATUS <code>" and the body, or "ERROR <reason>" and exits 2; then a last line "END".
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func fail(format string, args ...any) {
	fmt.Printf("ERROR "+format+"\nEND\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: apiget TARGET PATH token|anonymous")
	}
	target, path, auth := os.Args[1], os.Args[2], os.Args[3]
	if target == "service" {
		target = net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		fail("%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fail("no certificate in %s/ca.crt", saDir)
	}
	client := &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, "https://"+target+path, nil)
	if err != nil {
		fail("%v", err)
	}
	if auth == "token" {
		token, err := os.ReadFile(saDir + "/token")
		if err != nil {
			fail("%v", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := client.Do(req)
	if err != nil {
		fail("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("STATUS %d\n%s\nEND\n", resp.StatusCode, body)
}
