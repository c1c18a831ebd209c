from dbload.cli import main

main()
