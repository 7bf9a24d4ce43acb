from riskgate_operator.main import main

main()
