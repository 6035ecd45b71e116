from olapsync.cli import main

main()
