package main

import (
	"fmt"
	"os"

	clientcmd "k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes a cluster-admin kubeconfig for the API server on port.
func writeKubeconfig(path string, p pki, port int) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["devcluster"] = &clientcmdapi.Cluster{
		Server:               fmt.Sprintf("https://127.0.0.1:%d", port),
		CertificateAuthority: p.caCert(),
	}
	cfg.AuthInfos["zhengyun-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificate: p.adminCert(),
		ClientKey:         p.adminKey(),
	}
	cfg.Contexts["devcluster"] = &clientcmdapi.Context{Cluster: "devcluster", AuthInfo: "zhengyun-admin"}
	cfg.CurrentContext = "devcluster"
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return fmt.Errorf("unable to write kubeconfig: %w", err)
	}
	return os.Rename(tmp, path)
}
