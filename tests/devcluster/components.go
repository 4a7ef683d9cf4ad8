package main

// The real Kubernetes control-plane components, run in this process from their own packages:
// the same code paths as the kube-apiserver, kube-controller-manager and kube-scheduler binaries,
// minus the cobra commands (each of which would install its own signal handler).

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	cliflag "k8s.io/component-base/cli/flag"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	saIssuer    = "https://kubernetes.default.svc.cluster.local"
	admission   = "NamespaceLifecycle,LimitRanger,ServiceAccount,NodeRestriction,PodSecurity,Priority," +
		"DefaultTolerationSeconds,DefaultStorageClass,StorageObjectInUseProtection,PersistentVolumeClaimResize," +
		"RuntimeClass,TaintNodesByCondition,MutatingAdmissionWebhook,ValidatingAdmissionPolicy," +
		"ValidatingAdmissionWebhook,ResourceQuota"
)

func parseNamed(name string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	return nil
}

// runAPIServer serves the Kubernetes API on listener until ctx ends. It returns once the server
// has stopped (or failed to start).
func runAPIServer(ctx context.Context, p pki, etcd string, listener net.Listener, authnConf string) error {
	s := apiserveroptions.NewServerRunOptions()
	args := []string{
		"--etcd-servers=" + etcd,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--tls-cert-file=" + p.serverCert(),
		"--tls-private-key-file=" + p.serverKey(),
		"--client-ca-file=" + p.caCert(),
		"--service-account-issuer=" + saIssuer,
		"--service-account-key-file=" + p.saPub(),
		"--service-account-signing-key-file=" + p.saKey(),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=" + admission,
		"--profiling=false",
		"--event-ttl=1h",
		// The API server's only address is loopback, which the "kubernetes" Service's
		// Endpoints may not carry; nothing inside the cluster needs to reach it.
		"--endpoint-reconciler-type=none",
	}
	if authnConf != "" {
		args = append(args, "--authentication-config="+authnConf)
	}
	if err := parseNamed("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	return apiserver.Run(ctx, completed)
}

// runControllerManager runs the standard controllers (namespace, garbage collector, quota,
// deployments, replica sets, stateful sets, service accounts and tokens, …) until ctx ends.
func runControllerManager(ctx context.Context, p pki, kubeconfig string) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	known, disabled, aliases := controllermanager.KnownControllers(), controllermanager.ControllersDisabledByDefault(), controllermanager.ControllerAliases()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*",
		"--service-account-private-key-file=" + p.saKey(),
		"--root-ca-file=" + p.caCert(),
		"--cluster-signing-cert-file=" + p.caCert(),
		"--cluster-signing-key-file=" + p.caKey(),
		"--use-service-account-credentials=false",
		"--service-cluster-ip-range=" + serviceCIDR,
		// The defaults (20 requests/s, bursts of 30) make tens of thousands of pods take
		// half an hour to create; the benchmarks run that many.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
	}
	if err := parseNamed("kube-controller-manager", s.Flags(known, disabled, aliases), args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	c, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	return controllermanager.Run(ctx, c.Complete())
}

// runScheduler binds pods to nodes until ctx ends.
func runScheduler(ctx context.Context, kubeconfig string) error {
	opts := scheduleroptions.NewOptions()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
	}
	if err := parseNamed("kube-scheduler", *opts.Flags, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := scheduler.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler setup: %w", err)
	}
	return scheduler.Run(ctx, cc, sched)
}
