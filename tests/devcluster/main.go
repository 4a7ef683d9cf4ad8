// Command devcluster runs a real, local Kubernetes control plane for Zhengyun's development and
// tests: embedded etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the
// Kubernetes source, and simulated nodes (kwok) on which pods are scheduled and reach Running.
// It writes <dir>/kubeconfig (cluster-admin) and prints "ready" once the API answers /readyz and
// every node is Ready.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

type options struct {
	dir        string
	port       int
	nodes      int
	nodeCPU    string
	nodeMemory string
	nodePods   int
	fresh      bool
	verbose    bool
	authnConf  string
}

func parseOptions(args []string) (options, nodeShape, error) {
	var o options
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", ".devcluster", "state directory: etcd data, certificates, kubeconfig, pid")
	fs.IntVar(&o.port, "port", 0, "API server port on 127.0.0.1 (0 picks a free one, reusing the last run's when free)")
	fs.IntVar(&o.nodes, "nodes", 3, "number of simulated nodes (1-1000)")
	fs.StringVar(&o.nodeCPU, "node-cpu", "32", "allocatable CPU of each simulated node")
	fs.StringVar(&o.nodeMemory, "node-memory", "128Gi", "allocatable memory of each simulated node")
	fs.IntVar(&o.nodePods, "node-pods", 110, "maximum pods on each simulated node")
	fs.BoolVar(&o.fresh, "fresh", false, "delete the etcd data of earlier runs before starting")
	fs.BoolVar(&o.verbose, "verbose", false, "show the control plane's own logs")
	fs.StringVar(&o.authnConf, "authentication-config", "", "structured authentication configuration of the API server (an identity provider's JWTs); reloaded when the file changes")
	if err := fs.Parse(args); err != nil {
		return o, nodeShape{}, err
	}
	if fs.NArg() > 0 {
		return o, nodeShape{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return o, nodeShape{}, fmt.Errorf("--port %d is not a TCP port (0-65535)", o.port)
	}
	if o.port != 0 && o.port < 1024 {
		return o, nodeShape{}, fmt.Errorf("--port %d is privileged; use 1024-65535 or 0 for a free port", o.port)
	}
	if o.nodes < 1 || o.nodes > 1000 {
		return o, nodeShape{}, fmt.Errorf("--nodes %d is out of range (1-1000)", o.nodes)
	}
	if o.nodePods < 1 || o.nodePods > 100000 {
		return o, nodeShape{}, fmt.Errorf("--node-pods %d is out of range (1-100000)", o.nodePods)
	}
	shape, err := parseShape(o)
	if err != nil {
		return o, shape, err
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return o, shape, err
	}
	if o.authnConf != "" {
		if o.authnConf, err = filepath.Abs(o.authnConf); err != nil {
			return o, shape, err
		}
	}
	return o, shape, nil
}

func parseShape(o options) (nodeShape, error) {
	cpu, err := resource.ParseQuantity(o.nodeCPU)
	if err != nil || cpu.Sign() <= 0 {
		return nodeShape{}, fmt.Errorf("--node-cpu %q is not a positive quantity such as 32 or 500m", o.nodeCPU)
	}
	mem, err := resource.ParseQuantity(o.nodeMemory)
	if err != nil || mem.Sign() <= 0 {
		return nodeShape{}, fmt.Errorf("--node-memory %q is not a positive quantity such as 128Gi", o.nodeMemory)
	}
	return nodeShape{CPU: cpu, Memory: mem, Pods: *resource.NewQuantity(int64(o.nodePods), resource.DecimalSI)}, nil
}

func main() {
	o, shape, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(2)
	}
	if err := run(o, shape); err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(o options, shape nodeShape) error {
	quietLogs(o.verbose)
	st := state{dir: o.dir}
	if err := st.claim(); err != nil {
		return err
	}
	defer st.release()
	if o.fresh {
		if err := os.RemoveAll(st.etcdDir()); err != nil {
			return fmt.Errorf("unable to remove %s: %w", st.etcdDir(), err)
		}
	}
	if err := st.pki().ensure(); err != nil {
		return fmt.Errorf("unable to create certificates: %w", err)
	}
	p, err := st.choosePorts(o.port)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.API))
	if err != nil {
		return fmt.Errorf("port %d is already in use on 127.0.0.1: %w", p.API, err)
	}
	if err := writeKubeconfig(st.kubeconfig(), st.pki(), p.API); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	etcd, err := startEtcd(st.etcdDir(), p)
	if err != nil {
		return err
	}
	defer etcd.Close()

	failed := make(chan error, 4)
	go func() {
		failed <- named("kube-apiserver", runAPIServer(ctx, st.pki(), etcdURL(p), listener, o.authnConf))
	}()
	client, err := waitForAPI(ctx, st.kubeconfig(), failed)
	if err != nil {
		return err
	}
	go func() {
		failed <- named("kube-controller-manager", runControllerManager(ctx, st.pki(), st.kubeconfig()))
	}()
	go func() { failed <- named("kube-scheduler", runScheduler(ctx, st.kubeconfig())) }()
	if err := ensureNodes(ctx, client, o.nodes, shape); err != nil {
		return err
	}
	if err := ensureStorageClass(ctx, client); err != nil {
		return err
	}
	go runProvisioner(ctx, client)
	if err := startKwok(ctx, st.kubeconfig(), o.verbose); err != nil {
		return fmt.Errorf("kwok: %w", err)
	}
	if err := waitForNodes(ctx, client, o.nodes, failed); err != nil {
		return err
	}
	fmt.Printf("kubeconfig: %s\napi: https://127.0.0.1:%d\nready\n", st.kubeconfig(), p.API)

	select {
	case <-ctx.Done():
		fmt.Println("devcluster: stopping")
		return nil
	case err := <-failed:
		return err
	case err := <-etcd.Err():
		return fmt.Errorf("etcd: %w", err)
	}
}

func named(component string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped", component)
	}
	return fmt.Errorf("%s: %w", component, err)
}

// quietLogs keeps the control plane's info logs off the terminal unless asked for.
func quietLogs(verbose bool) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if !verbose {
		_ = fs.Set("v", "0")
		_ = fs.Set("stderrthreshold", "ERROR")
		_ = fs.Set("logtostderr", "false")
		_ = fs.Set("alsologtostderr", "false")
		klog.SetOutput(discard{})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func waitForAPI(ctx context.Context, kubeconfig string, failed <-chan error) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	deadline := time.After(3 * time.Minute)
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return client, nil
		}
		select {
		case err := <-failed:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("kube-apiserver did not answer /readyz within 3 minutes: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func waitForNodes(ctx context.Context, client kubernetes.Interface, n int, failed <-chan error) error {
	deadline := time.After(3 * time.Minute)
	for {
		ready, err := readyNodes(ctx, client)
		if err == nil && ready >= n {
			return nil
		}
		select {
		case err := <-failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("only %d of %d simulated nodes became Ready within 3 minutes", ready, n)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func readyNodes(ctx context.Context, client kubernetes.Interface) (int, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	ready := 0
	for _, node := range nodes.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, nil
}
