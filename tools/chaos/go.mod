module pegasus-py/tools/chaos

go 1.22

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/apache/incubator-pegasus/go-client v0.0.0-20220526071020-be5634371701
)

require (
	github.com/apache/thrift v0.13.0 // indirect
	github.com/cenkalti/backoff/v4 v4.1.0 // indirect
	github.com/konsorten/go-windows-terminal-sequences v1.0.1 // indirect
	github.com/sirupsen/logrus v1.4.2 // indirect
	golang.org/x/net v0.0.0-20191105084925-a882066a44e0 // indirect
	golang.org/x/sys v0.0.0-20191010194322-b09406accb47 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.0.0 // indirect
	gopkg.in/tomb.v2 v2.0.0-20161208151619-d5d1b5820637 // indirect
	k8s.io/apimachinery v0.0.0-20191123233150-4c4803ed55e3 // indirect
)
