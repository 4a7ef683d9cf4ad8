package main

// Simulated nodes: real Node objects with real capacity, kept alive (status, leases) by the kwok
// controller, which also plays the kubelet's part for pods bound to them (Running, Ready,
// deletion). Nothing runs in a container; everything else about scheduling is genuine.

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/client/clientset/versioned"
	"sigs.k8s.io/kwok/pkg/config"
	"sigs.k8s.io/kwok/pkg/kwok/controllers"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwokclient "sigs.k8s.io/kwok/pkg/utils/client"
)

const (
	kwokAnnotation = "kwok.x-k8s.io/node"
	leaseSeconds   = 40
)

// nodeShape is the allocatable capacity of each simulated node.
type nodeShape struct {
	CPU    resource.Quantity
	Memory resource.Quantity
	Pods   resource.Quantity
}

// ensureNodes creates nodes devcluster-node-0..n-1 if missing.
func ensureNodes(ctx context.Context, client kubernetes.Interface, n int, shape nodeShape) error {
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("devcluster-node-%d", i),
				Annotations: map[string]string{kwokAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"kubernetes.io/hostname": fmt.Sprintf("devcluster-node-%d", i),
				},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: shape.CPU, corev1.ResourceMemory: shape.Memory, corev1.ResourcePods: shape.Pods,
				},
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU: shape.CPU, corev1.ResourceMemory: shape.Memory, corev1.ResourcePods: shape.Pods,
				},
			},
		}
		_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("unable to create node %s: %w", node.Name, err)
		}
	}
	return nil
}

// startKwok starts the kwok controller for every node annotated as simulated.
func startKwok(ctx context.Context, kubeconfig string, verbose bool) error {
	level := kwoklog.LevelWarn
	if verbose {
		level = kwoklog.LevelInfo
	}
	ctx = kwoklog.NewContext(ctx, kwoklog.NewLogger(os.Stderr, level))
	stages, err := defaultStages()
	if err != nil {
		return err
	}
	cs, err := kwokclient.NewClientset("", kubeconfig)
	if err != nil {
		return err
	}
	dynamicClient, err := cs.ToDynamicClient()
	if err != nil {
		return err
	}
	mapper, err := cs.ToRESTMapper()
	if err != nil {
		return err
	}
	restConfig, err := cs.ToRESTConfig()
	if err != nil {
		return err
	}
	restClient, err := rest.RESTClientFor(restConfig)
	if err != nil {
		return err
	}
	typed, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	kwokTyped, err := versioned.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	id, err := controllers.Identity()
	if err != nil {
		return err
	}
	ctr, err := controllers.NewController(controllers.Config{
		Clock:                             clock.RealClock{},
		DynamicClient:                     dynamicClient,
		RESTClient:                        restClient,
		RESTMapper:                        mapper,
		ImpersonatingDynamicClient:        cs.ToImpersonatingDynamicClient(),
		ImpersonatingTypedClient:          cs.ToImpersonatingTypedClient(),
		TypedClient:                       typed,
		TypedKwokClient:                   kwokTyped,
		ManageNodesWithAnnotationSelector: kwokAnnotation + "=fake",
		CIDR:                              "10.244.0.0/16",
		NodeIP:                            "10.0.0.1",
		LocalStages:                       stages,
		PodPlayStageParallelism:           4,
		NodePlayStageParallelism:          4,
		NodeLeaseDurationSeconds:          leaseSeconds,
		NodeLeaseParallelism:              4,
		PodsOnNodeSyncParallelism:         2,
		EnablePodsOnNodeSyncListPager:     true,
		ID:                                id,
	})
	if err != nil {
		return fmt.Errorf("unable to create the kwok controller: %w", err)
	}
	return ctr.Start(ctx)
}

func defaultStages() (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	raw := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	out := map[internalversion.StageResourceRef][]*internalversion.Stage{}
	for _, r := range raw {
		stage, err := config.UnmarshalWithType[*internalversion.Stage](r)
		if err != nil {
			return nil, fmt.Errorf("unable to load a kwok stage: %w", err)
		}
		out[stage.Spec.ResourceRef] = append(out[stage.Spec.ResourceRef], stage)
	}
	return out, nil
}
