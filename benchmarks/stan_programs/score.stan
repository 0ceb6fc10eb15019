// A bounded score over visits as jdmbayes models it (src/jdmbayes/models/longitudinal.py,
// likelihood "beta_binomial"), written independently in Stan the way a Stan user would:
// value ~ BetaBinomial(top, p * phi, (1 - p) * phi) with logit p = baseline + change * h(t);
// patient baseline and change non-centred and correlated (rho, with (rho + 1) / 2 ~ Beta:
// the LKJ prior of a 2 x 2 correlation), change linear in t / T or to a plateau
// 1 - exp(-t / tau), group main effects and (when the design has them) pooled cell
// deviations. jdmbayes samples the baselines centred and the changes non-centred by
// default; the posterior of the population parameters is the same.
data {
  int<lower=1> N;
  int<lower=0> E;
  int<lower=1> C;
  matrix[N, E] x_group;
  array[N] int<lower=1, upper=C> cell;
  int<lower=0, upper=1> cells;          // 1: pooled cell deviations
  int<lower=0> M;
  array[M] int<lower=1, upper=N> patient;
  vector[M] week;
  int<lower=1> top;
  array[M] int<lower=0, upper=top> value;
  int<lower=0, upper=1> plateau;        // 1: plateau shape, 0: linear in week / reference
  real<lower=0> reference;
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
  real noise_mu;                        // phi ~ LogNormal(noise_mu, noise_sigma)
  real<lower=0> noise_sigma;
  real<lower=0> lkj_alpha;
  real<lower=0> lkj_beta;
}
parameters {
  real intercept;
  real<lower=0> sigma_intercept;
  vector[N] z_intercept;
  real change;
  vector[E] beta_group;
  array[cells] real<lower=0> sigma_cell;
  vector[cells * C] z_cell;
  real<lower=0> sigma_change;
  vector[N] z_change;
  real<lower=0, upper=1> lkj_corr;
  array[plateau] real<lower=0> tau_weeks;
  real<lower=0> noise;
}
transformed parameters {
  real rho_baseline_change = 2 * lkj_corr - 1;
}
model {
  vector[N] baseline = intercept + sigma_intercept * z_intercept;
  vector[N] patient_change = change + x_group * beta_group + sigma_change
                             * (rho_baseline_change * z_intercept
                                + sqrt(1 - square(rho_baseline_change)) * z_change);
  vector[M] h;
  vector[M] p;
  if (cells == 1) {
    patient_change += sigma_cell[1] * z_cell[cell];
    sigma_cell ~ normal(0, sigma_cell_sigma);
    z_cell ~ std_normal();
  }
  if (plateau == 1) {
    h = 1 - exp(-week / tau_weeks[1]);
    tau_weeks ~ lognormal(tau_mu, tau_sigma);
  } else {
    h = week / reference;
  }
  intercept ~ normal(intercept_mu, intercept_sigma);
  sigma_intercept ~ normal(0, sigma_intercept_sigma);
  z_intercept ~ std_normal();
  change ~ normal(change_mu, change_sigma);
  beta_group ~ normal(beta_mu, beta_sigma);
  sigma_change ~ normal(0, sigma_change_sigma);
  z_change ~ std_normal();
  lkj_corr ~ beta(lkj_alpha, lkj_beta);
  noise ~ lognormal(noise_mu, noise_sigma);
  p = inv_logit(baseline[patient] + patient_change[patient] .* h);
  value ~ beta_binomial(top, p * noise, (1 - p) * noise);
}
