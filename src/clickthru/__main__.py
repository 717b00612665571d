from clickthru.cli import main

main()
