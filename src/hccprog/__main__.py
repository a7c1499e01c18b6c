from hccprog.cli import main

main()
