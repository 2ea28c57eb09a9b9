from mlplab.bench.cli import main

main()
