// CoreDNS with only the plugins aiconform's Corefiles use (the real node's cluster DNS, and kubeadm's default
// Corefile in a kind node image), instead of the module root's main package, which links every plugin and pulls
// the AWS, Azure, GCP and Datadog SDKs into the build (a 1.7 GB module cache, a 79 MB binary).  Built by
// harness/bins.py from the pinned github.com/coredns/coredns module (versions.toml: [coredns] source).
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
