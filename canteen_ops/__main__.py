from canteen_ops.cli.app import main

main()
