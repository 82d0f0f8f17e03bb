"""Operations: the jobs and schedules that span every stage."""
