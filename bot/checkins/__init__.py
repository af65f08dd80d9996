"""SMS check-ins for patients after their initial series: the questions, reading the answers,
and the schedule that sends them."""
