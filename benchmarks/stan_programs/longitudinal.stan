// The jdmbayes longitudinal model (src/jdmbayes/longitudinal_model.py) with the
// beta-binomial likelihood, written independently in Stan: random baseline (non-centred),
// change to a plateau h(t) = 1 - exp(-t / tau) with group effects, cell deviations and
// patient changes (non-centred).
data {
  int<lower=1> N;
  int<lower=0> E;
  int<lower=1> C;
  matrix[N, E] x_group;
  array[N] int<lower=1, upper=C> cell;
  int<lower=0> M;
  array[M] int<lower=1, upper=N> patient;
  vector[M] week;
  int<lower=1> top;                 // the top of the scale (N)
  array[M] int<lower=0, upper=top> value;
  real intercept_mu;
  real<lower=0> intercept_sigma;
  real<lower=0> sigma_intercept_sigma;
  real change_mu;
  real<lower=0> change_sigma;
  real beta_mu;
  real<lower=0> beta_sigma;
  real<lower=0> sigma_cell_sigma;
  real<lower=0> sigma_change_sigma;
  real tau_mu;
  real<lower=0> tau_sigma;
  real noise_mu;
  real<lower=0> noise_sigma;
}
parameters {
  real intercept;
  real<lower=0> sigma_intercept;
  vector[N] z_intercept;
  real change;
  vector[E] beta_group;
  real<lower=0> sigma_cell;
  vector[C] z_cell;
  real<lower=0> sigma_change;
  vector[N] z_change;
  real<lower=0> tau_weeks;
  real<lower=0> noise;
}
transformed parameters {
  vector[N] baseline = intercept + sigma_intercept * z_intercept;
  vector[N] patient_change = change + x_group * beta_group + sigma_cell * z_cell[cell]
                             + sigma_change * z_change;
}
model {
  vector[M] p;
  intercept ~ normal(intercept_mu, intercept_sigma);
  sigma_intercept ~ normal(0, sigma_intercept_sigma);
  z_intercept ~ std_normal();
  change ~ normal(change_mu, change_sigma);
  beta_group ~ normal(beta_mu, beta_sigma);
  sigma_cell ~ normal(0, sigma_cell_sigma);
  z_cell ~ std_normal();
  sigma_change ~ normal(0, sigma_change_sigma);
  z_change ~ std_normal();
  tau_weeks ~ lognormal(tau_mu, tau_sigma);
  noise ~ lognormal(noise_mu, noise_sigma);
  p = inv_logit(baseline[patient] + patient_change[patient] .* (1 - exp(-week / tau_weeks)));
  value ~ beta_binomial(top, p * noise, (1 - p) * noise);
}
