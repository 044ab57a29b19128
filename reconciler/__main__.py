from reconciler.cli.entry import main

main()
