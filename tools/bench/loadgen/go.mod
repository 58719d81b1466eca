module pegasus-py/tools/bench/loadgen

go 1.22
